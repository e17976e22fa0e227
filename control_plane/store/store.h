// The control plane's durable state: resources as opaque bytes under (kind, namespace,
// name), a monotonic revision that orders every change, and the log of changes that
// translation and `meshctl` watch. Two implementations: SQLite (default, embedded) and
// etcd (several control-plane replicas).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/strings.h"
#include "resources/object.h"

namespace meshplug::control_plane::store {

using resources::Key;
using resources::Kind;

struct Entry {
  Key key;
  std::string value;         // the serialized typed resource
  int64_t resource_version;  // revision of its last change
  int64_t create_revision;   // revision that created it
};

struct Write {
  Key key;
  std::optional<std::string> value;  // nullopt deletes
  // Optimistic concurrency: the resource_version the writer read (0 = must not exist),
  // or nullopt to write unconditionally.
  std::optional<int64_t> expected_version;
};

struct Event {
  enum class Type { kPut, kDelete };
  int64_t revision;
  Type type;
  Entry entry;  // for kDelete, the value it had
};

// The error of a write whose expected_version is not the object's: `current` is its
// resource_version, 0 when it does not exist. Both stores say it the same way.
inline absl::Status VersionConflict(const Key& key, int64_t expected, int64_t current) {
  return absl::FailedPreconditionError(
      expected == 0 ? Cat(key.ToString(), " already exists (resourceVersion ", current, ")")
      : current != 0
          ? Cat(key.ToString(), " was changed: its resourceVersion is ", current, ", not ", expected,
                "; get it again and retry")
          : Cat(key.ToString(), " no longer exists"));
}

// Writes that need not land together go in commits of at most this many: etcd refuses
// transactions of more than 128 operations by default (--max-txn-ops).
inline constexpr size_t kWritesPerCommit = 100;

// `writes` in runs of at most kWritesPerCommit, in order.
inline std::vector<std::vector<Write>> InCommits(const std::vector<Write>& writes) {
  std::vector<std::vector<Write>> out;
  for (size_t at = 0; at < writes.size(); at += kWritesPerCommit) {
    out.emplace_back(writes.begin() + at, writes.begin() + std::min(writes.size(), at + kWritesPerCommit));
  }
  return out;
}

inline absl::Status MissingForDelete(const Key& key) { return absl::NotFoundError(Cat(key.ToString(), " not found")); }

class Store {
 public:
  virtual ~Store() = default;

  // Applies every write atomically as one new revision, or none of them: a conflict
  // (FAILED_PRECONDITION) or a delete of something missing (NOT_FOUND) names the key.
  // Durable when it returns.
  virtual absl::StatusOr<int64_t> Commit(const std::vector<Write>& writes) = 0;

  virtual absl::StatusOr<std::optional<Entry>> Get(const Key& key) = 0;
  // All of `kind` (every kind if nullopt) in namespace `ns` (all if empty), sorted by kind
  // name, namespace and name.
  virtual absl::StatusOr<std::vector<Entry>> List(std::optional<resources::Kind> kind, const std::string& ns) = 0;

  virtual int64_t Revision() = 0;

  // The changes of up to `max_revisions` whole revisions after `since`, in order.
  // OUT_OF_RANGE when the log no longer reaches back to `since` (compacted): re-list
  // and watch from Revision().
  virtual absl::StatusOr<std::vector<Event>> ChangesSince(int64_t since,
                                                          int64_t max_revisions) = 0;

  // `fn(revision)` runs after every commit, this process's or (etcd) another replica's,
  // on the committing thread (SQLite) or the watch's (etcd); keep it short. The returned
  // handle unsubscribes when destroyed.
  using Subscription = std::shared_ptr<void>;
  virtual Subscription Subscribe(std::function<void(int64_t)> fn) = 0;

  // Secrets the control plane keeps for itself (its CA key, the token key, join tokens
  // already used): apart from resources, never listed, watched or in the change log.
  virtual absl::StatusOr<std::optional<std::string>> GetSecret(const std::string& name) = 0;
  // Stores `value` under `name` unless something is stored there; false when it was.
  // `expires_unix` > 0: the secret is dropped after that time (pruned on later creates).
  virtual absl::StatusOr<bool> CreateSecret(const std::string& name, const std::string& value,
                                            int64_t expires_unix) = 0;
  // Stores `value` under `name`, replacing what was there (the CA during a rotation).
  virtual absl::Status PutSecret(const std::string& name, const std::string& value) = 0;
  virtual absl::Status DeleteSecret(const std::string& name) = 0;
  // Every secret not expired, by name: for copying a mesh to another store.
  struct Secret {
    std::string value;
    int64_t expires_unix = 0;  // 0: never
  };
  virtual absl::StatusOr<std::map<std::string, Secret>> ListSecrets() = 0;

  // Live values: they last as long as this control plane does. Replicas on etcd share
  // them (on a lease this process keeps alive: gone within its TTL once the process is);
  // with SQLite only this process uses them. For what every replica must see of the
  // others (agents' status) and what one replica does at a time (a leader's role).
  // Stores each value by its name, in as few round trips as the store can.
  virtual absl::Status PutLive(const std::map<std::string, std::string>& values) = 0;
  // Stores `value` unless a live value (of any replica) is there; false when one was.
  virtual absl::StatusOr<bool> CreateLive(const std::string& name, const std::string& value) = 0;
  virtual absl::Status DeleteLive(const std::string& name) = 0;
  // Every replica's live values whose names start with `prefix`, by name.
  virtual absl::StatusOr<std::map<std::string, std::string>> ListLive(const std::string& prefix) = 0;

  // Whether other control planes may use this store at the same time (etcd): only then is
  // there anything to share with or claim from them.
  virtual bool Shared() const = 0;

  // "sqlite:/path" — for logs and `meshctl version`.
  virtual std::string Describe() const = 0;
};

}  // namespace meshplug::control_plane::store
