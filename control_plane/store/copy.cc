#include "control_plane/store/copy.h"

#include <map>
#include <vector>

#include "common/strings.h"

namespace meshplug::control_plane::store {

absl::StatusOr<CopyReport> CopyStore(Store& from, Store& to) {
  auto existing = to.List(std::nullopt, "");
  if (!existing.ok()) return existing.status();
  auto existing_secrets = to.ListSecrets();
  if (!existing_secrets.ok()) return existing_secrets.status();
  if (!existing->empty() || !existing_secrets->empty()) {
    return absl::FailedPreconditionError(Cat(to.Describe(), " already holds a mesh (", existing->size(), " objects, ",
                                             existing_secrets->size(), " secrets); copy into an empty store"));
  }
  auto objects = from.List(std::nullopt, "");
  if (!objects.ok()) return objects.status();
  auto secrets = from.ListSecrets();
  if (!secrets.ok()) return secrets.status();

  CopyReport report;
  // Secrets first: the CA is there before anything that a control plane would sign for.
  for (const auto& [name, secret] : *secrets) {
    auto made = to.CreateSecret(name, secret.value, secret.expires_unix);
    if (!made.ok()) return made.status();
    ++report.secrets;
  }
  std::map<int64_t, std::vector<Write>> by_revision;
  for (auto& e : *objects) by_revision[e.resource_version].push_back(Write{e.key, std::move(e.value), 0});
  for (const auto& [_, writes] : by_revision) {
    for (const std::vector<Write>& some : InCommits(writes)) {
      auto rev = to.Commit(some);
      if (!rev.ok()) return rev.status();
      ++report.commits;
      report.objects += static_cast<int64_t>(some.size());
    }
  }
  return report;
}

}  // namespace meshplug::control_plane::store
