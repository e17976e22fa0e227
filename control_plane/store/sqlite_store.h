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
  enum class Mode {
    kOpen,  // open the store at `path`, or create one when there is no file
    // Start an empty store at `path`; a file there that is not a usable store is kept
    // aside as `path`.damaged-<time>. A usable store is never replaced.
    kInit,
  };

  // Opens the store at `path` (mode 0600: it holds the mesh's CA key) and takes an exclusive lock on `path`.lock so a second
  // control plane cannot share the file by mistake. The file must be meshplug's own
  // (SQLite application id, schema version, tables and integrity are checked): an empty,
  // foreign, damaged or newer store is refused with what is wrong and the way out
  // (restore it, or Mode::kInit / --store_init for an empty mesh).
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(const std::string& path, Mode mode = Mode::kOpen);

  // "MPLG" in the SQLite header's application id, and the schema this build writes.
  static constexpr int32_t kApplicationId = 0x4d504c47;
  static constexpr int32_t kSchemaVersion = 1;
  ~SqliteStore() override;

  absl::StatusOr<int64_t> Commit(const std::vector<Write>& writes) override;
  absl::StatusOr<std::optional<Entry>> Get(const Key& key) override;
  absl::StatusOr<std::vector<Entry>> List(std::optional<Kind> kind, const std::string& ns) override;
  int64_t Revision() override;
  absl::StatusOr<std::vector<Event>> ChangesSince(int64_t since, int64_t max_revisions) override;
  Subscription Subscribe(std::function<void(int64_t)> fn) override;
  absl::StatusOr<std::optional<std::string>> GetSecret(const std::string& name) override;
  absl::StatusOr<bool> CreateSecret(const std::string& name, const std::string& value, int64_t expires_unix) override;
  absl::Status PutSecret(const std::string& name, const std::string& value) override;
  absl::Status DeleteSecret(const std::string& name) override;
  absl::StatusOr<std::map<std::string, Secret>> ListSecrets() override;
  absl::Status PutLive(const std::map<std::string, std::string>& values) override;
  absl::StatusOr<bool> CreateLive(const std::string& name, const std::string& value) override;
  absl::Status DeleteLive(const std::string& name) override;
  absl::StatusOr<std::map<std::string, std::string>> ListLive(const std::string& prefix) override;
  bool Shared() const override { return false; }  // one control plane per file (the lock)
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
  std::mutex live_mu_;
  std::map<std::string, std::string> live_;  // one process: live values need no file
};

}  // namespace meshplug::control_plane::store
