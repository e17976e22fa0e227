// Moving a mesh from one store to another (SQLite to etcd, and back): every resource and
// every secret, into a store that holds nothing yet.
#pragma once

#include <cstdint>

#include "control_plane/store/store.h"

namespace meshplug::control_plane::store {

struct CopyReport {
  int64_t objects = 0;
  int64_t commits = 0;  // one per source revision (more when one is too large for etcd)
  int64_t secrets = 0;
};

// Copies `from` into `to`, which must hold no resource and no secret. The order of
// changes is kept: objects are written in commits of their source revisions, oldest
// first, so resourceVersions compare in `to` as they did in `from` (their numbers change).
// Expiring secrets keep their expiry. Stop the control planes on both stores first.
absl::StatusOr<CopyReport> CopyStore(Store& from, Store& to);

}  // namespace meshplug::control_plane::store
