#include "control_plane/security/label_binding.h"

#include "common/strings.h"

namespace meshplug::control_plane::security {
namespace {

std::string SecretName(const std::string& workload) { return "bound-labels/" + workload; }

// "k=v,k2=v2" in key order: the stored form, and how errors show labels. Keys and values
// cannot hold '\n', so one per line is unambiguous.
std::string Encode(const Labels& labels, const char* separator) {
  std::string out;
  for (const auto& [k, v] : labels) out += Cat(out.empty() ? "" : separator, k, "=", v);
  return out;
}

Labels Decode(const std::string& text) {
  Labels out;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(at, end - at);
    const size_t eq = line.find('=');
    if (eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 1);
    at = end + 1;
  }
  return out;
}

}  // namespace

absl::Status BindLabels(store::Store& store, const std::string& workload, const Labels& labels) {
  for (const auto& [k, v] : labels) {
    if (k.find_first_of("=\n") != std::string::npos || v.find('\n') != std::string::npos) {
      return absl::InvalidArgumentError(Cat("labels: \"", k, "\" cannot be bound (no '=' in keys, no newlines)"));
    }
  }
  return store.PutSecret(SecretName(workload), Encode(labels, "\n"));
}

absl::Status CheckBoundLabels(store::Store& store, const std::string& workload, const Labels& labels) {
  auto bound = store.GetSecret(SecretName(workload));
  if (!bound.ok()) return bound.status();
  if (!bound->has_value()) return absl::OkStatus();
  const Labels expected = Decode(**bound);
  if (expected == labels) return absl::OkStatus();
  return absl::PermissionDeniedError(Cat("node.metadata.labels {", Encode(labels, ","), "} are not the labels {",
                                         Encode(expected, ","), "} that the join token bound to ", workload));
}

}  // namespace meshplug::control_plane::security
