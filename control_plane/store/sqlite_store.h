// The default store: one SQLite file in WAL mode, fsynced on every commit.
#pragma once

#include <sqlite3.h>

#include <memory>
#include <mutex>
#include <string>

#include "control_plane/store/notifier.h"
#include "control_plane/store/store.h"

namespace meshplug::control_plane::store {

class SqliteStore : public Store {
 public:
  // Opens (creating if needed) the database at `path`, and takes an exclusive lock on
  // `path`.lock so a second control plane cannot share the file by mistake.
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(const std::string& path);
  ~SqliteStore() override;

  absl::StatusOr<int64_t> Commit(const std::vector<Write>& writes) override;
  absl::StatusOr<std::optional<Entry>> Get(const Key& key) override;
  absl::StatusOr<std::vector<Entry>> List(std::optional<Kind> kind, const std::string& ns) override;
  int64_t Revision() override;
  absl::StatusOr<std::vector<Event>> ChangesSince(int64_t since, int64_t max_revisions) override;
  Subscription Subscribe(std::function<void(int64_t)> fn) override;
  std::string Describe() const override { return "sqlite:" + path_; }

  // How many revisions of change log are kept for watchers that fall behind.
  static constexpr int64_t kChangeLogRevisions = 10000;

 private:
  SqliteStore(std::string path, sqlite3* db, int lock_fd);
  absl::StatusOr<int64_t> CommitLocked(const std::vector<Write>& writes);

  const std::string path_;
  sqlite3* db_;
  const int lock_fd_;
  std::mutex mu_;  // one connection; SQLite calls are serialized here
  int64_t revision_ = 0;
  Notifier notifier_;
};

}  // namespace meshplug::control_plane::store
