#include "control_plane/store/open.h"

#include "common/log.h"
#include "common/strings.h"
#include "control_plane/store/etcd_store.h"
#include "control_plane/store/sqlite_store.h"

namespace meshplug::control_plane::store {

absl::StatusOr<std::unique_ptr<Store>> OpenStore(const std::string& spec, const OpenOptions& options) {
  if (spec.rfind("etcd:", 0) != 0) {
    auto sqlite = SqliteStore::Open(spec, options.init ? SqliteStore::Mode::kInit : SqliteStore::Mode::kOpen);
    if (!sqlite.ok()) return sqlite.status();
    return std::unique_ptr<Store>(*std::move(sqlite));
  }
  if (options.init) return absl::InvalidArgumentError("--store_init is for an SQLite store, not " + spec);
  auto endpoints = EtcdStore::ParseUrl(spec);
  if (!endpoints.ok()) return absl::InvalidArgumentError(Cat("--store: ", endpoints.status().message()));
  EtcdStore::Options etcd;
  etcd.endpoints = *std::move(endpoints);
  // Replicas wait for etcd rather than fail: they are often started together.
  for (int attempt = 1;; ++attempt) {
    auto opened = EtcdStore::Open(etcd);
    if (opened.ok()) return std::unique_ptr<Store>(*std::move(opened));
    if (opened.status().code() != absl::StatusCode::kUnavailable) return opened.status();
    const auto delay = std::chrono::seconds(std::min(attempt, 5));
    log::Warn("waiting for etcd", {{"store", spec}, {"error", std::string(opened.status().message())},
                                   {"retry_in_s", std::to_string(delay.count())}});
    if (!options.wait_to_retry || !options.wait_to_retry(delay)) return opened.status();
  }
}

}  // namespace meshplug::control_plane::store
