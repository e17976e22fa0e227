// The store named by the control plane's --store flag: an SQLite file path, or
// etcd://HOST:PORT[,HOST:PORT...] for replicated control planes.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "control_plane/store/store.h"

namespace meshplug::control_plane::store {

struct OpenOptions {
  bool init = false;  // SQLite's --store_init
  // While etcd is unreachable, called between attempts: false stops trying (a signal).
  std::function<bool(std::chrono::seconds)> wait_to_retry;
};

absl::StatusOr<std::unique_ptr<Store>> OpenStore(const std::string& spec, const OpenOptions& options);

}  // namespace meshplug::control_plane::store
