#include "control_plane/store/sqlite_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "common/log.h"
#include "common/strings.h"

namespace meshplug::control_plane::store {
namespace {

// A prepared statement that finalizes itself.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) stmt_ = nullptr;
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  bool ok() const { return stmt_ != nullptr; }
  Stmt& Bind(int i, int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  Stmt& Bind(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  // The key's kind, namespace and name at i, i+1, i+2.
  Stmt& BindKey(int i, const Key& key) { return Bind(i, resources::KindName(key.kind)).Bind(i + 1, key.ns).Bind(i + 2, key.name); }
  Stmt& BindBlob(int i, const std::string& v) {
    sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() { return sqlite3_step(stmt_); }
  int64_t Int(int col) { return sqlite3_column_int64(stmt_, col); }
  std::string Text(int col) {
    const void* p = sqlite3_column_blob(stmt_, col);
    return p ? std::string(static_cast<const char*>(p), sqlite3_column_bytes(stmt_, col)) : "";
  }
  // The key in columns col, col+1, col+2; an error for a kind this build does not know.
  absl::StatusOr<Key> KeyAt(int col) {
    const std::string kind = Text(col);
    const resources::KindInfo* info = resources::FindKind(kind);
    if (info == nullptr) return absl::DataLossError(Cat("the store holds an object of unknown kind \"", kind, "\""));
    return Key{info->id, Text(col + 1), Text(col + 2)};
  }
  std::string Error() const { return sqlite3_errmsg(db_); }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

absl::Status Exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return absl::InternalError(Cat("sqlite: ", msg, " in: ", sql));
  }
  return absl::OkStatus();
}

absl::Status StepError(Stmt& s) { return absl::InternalError(Cat("sqlite: ", s.Error())); }

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('revision', 0), ('compacted', 0);
CREATE TABLE IF NOT EXISTS objects (
  kind TEXT NOT NULL, ns TEXT NOT NULL, name TEXT NOT NULL,
  value BLOB NOT NULL, resource_version INTEGER NOT NULL, create_revision INTEGER NOT NULL,
  PRIMARY KEY (kind, ns, name));
CREATE TABLE IF NOT EXISTS changes (
  revision INTEGER NOT NULL, seq INTEGER NOT NULL, op INTEGER NOT NULL,
  kind TEXT NOT NULL, ns TEXT NOT NULL, name TEXT NOT NULL,
  value BLOB NOT NULL, create_revision INTEGER NOT NULL,
  PRIMARY KEY (revision, seq));
CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL, expires INTEGER NOT NULL);
)sql";

int64_t MetaValue(sqlite3* db, const char* key) {
  Stmt s(db, "SELECT v FROM meta WHERE k = ?");
  s.Bind(1, std::string(key));
  return s.Step() == SQLITE_ROW ? s.Int(0) : 0;
}

}  // namespace

namespace {

int64_t Pragma(sqlite3* db, const char* pragma, bool* ok) {
  Stmt s(db, pragma);
  *ok = s.ok() && s.Step() == SQLITE_ROW;
  return *ok ? s.Int(0) : 0;
}

// Why the open database is not a usable meshplug store ("" when it is one). A store of an
// earlier meshplug (the same tables, no application id yet) is usable and gets the id.
std::string Unusable(sqlite3* db) {
  bool ok = false;
  const int64_t id = Pragma(db, "PRAGMA application_id", &ok);
  if (!ok) return Cat("it is not an SQLite database (", sqlite3_errmsg(db), ")");
  const int64_t version = Pragma(db, "PRAGMA user_version", &ok);
  const int64_t tables = Pragma(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table'", &ok);
  if (id == 0 && tables == 0) return "it is empty";
  if (id != 0 && id != SqliteStore::kApplicationId) return Cat("it is another program's SQLite database (application id ", id, ")");
  if (version > SqliteStore::kSchemaVersion) {
    return Cat("it was written by a newer meshplug (schema ", version, ", this one reads ", SqliteStore::kSchemaVersion, ")");
  }
  for (const char* table : {"meta", "objects", "changes"}) {
    Stmt s(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?");
    s.Bind(1, std::string(table));
    if (s.Step() != SQLITE_ROW || s.Int(0) != 1) {
      return id == 0 ? "it is another program's SQLite database" : Cat("it is damaged: table ", table, " is missing");
    }
  }
  Stmt revision(db, "SELECT v FROM meta WHERE k = 'revision'");
  if (revision.Step() != SQLITE_ROW) return "it is damaged: its revision is missing";
  Stmt check(db, "PRAGMA quick_check(1)");
  if (check.Step() != SQLITE_ROW || check.Text(0) != "ok") {
    return Cat("it is damaged: ", check.ok() ? check.Text(0) : sqlite3_errmsg(db));
  }
  return "";
}

std::string Stamp() {
  return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count());
}

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path, Mode mode) {
  const std::string lock_path = path + ".lock";
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::FailedPreconditionError(Cat("cannot open ", lock_path, ": ", std::strerror(errno)));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return absl::FailedPreconditionError(
        Cat("store ", path, " is in use by another control plane (lock ", lock_path, ")"));
  }
  auto fail = [&](absl::Status st) {
    ::close(fd);
    return st;
  };
  std::error_code ec;
  const bool existed = std::filesystem::exists(path, ec);
  sqlite3* db = nullptr;
  auto open_db = [&]() -> absl::Status {
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) == SQLITE_OK) {
      return absl::OkStatus();
    }
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    db = nullptr;
    return absl::FailedPreconditionError(Cat("cannot open store ", path, ": ", msg));
  };
  if (absl::Status st = open_db(); !st.ok()) return fail(st);
  if (existed) {
    if (const std::string why = Unusable(db); !why.empty()) {
      sqlite3_close(db);
      db = nullptr;
      if (mode != Mode::kInit) {
        return fail(absl::FailedPreconditionError(
            Cat("store ", path, " is not usable: ", why,
                ". Restore it from a backup, or start an empty mesh there with --store_init (the file is kept "
                "aside)")));
      }
      const std::string aside = Cat(path, ".damaged-", Stamp());
      for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::rename(path + suffix, aside + suffix, ec);
      log::Warn("store not usable; kept aside, starting an empty one", {{"store", path}, {"kept", aside}, {"reason", why}});
      if (absl::Status st = open_db(); !st.ok()) return fail(st);
    } else if (mode == Mode::kInit) {
      sqlite3_close(db);
      return fail(absl::FailedPreconditionError(
          Cat("store ", path, " is a usable store; --store_init only replaces one that cannot be opened")));
    }
  }
  // Owner only: the store holds the mesh's CA key. SQLite gives its -wal and -shm files
  // the database file's mode.
  std::filesystem::permissions(path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write, ec);
  std::unique_ptr<SqliteStore> store(new SqliteStore(path, db, fd));
  // WAL + synchronous=FULL: a commit is on disk when it returns, and a crash mid-commit
  // leaves the previous state.
  const std::string identify = Cat("PRAGMA application_id = ", kApplicationId, "; PRAGMA user_version = ", kSchemaVersion);
  for (const char* sql : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", "PRAGMA busy_timeout=5000", kSchema,
                          identify.c_str()}) {
    if (auto st = Exec(db, sql); !st.ok()) return st;
  }
  store->revision_ = MetaValue(db, "revision");
  return store;
}

SqliteStore::SqliteStore(std::string path, sqlite3* db, int lock_fd)
    : path_(std::move(path)), db_(db), lock_fd_(lock_fd) {}

SqliteStore::~SqliteStore() {
  sqlite3_close(db_);
  ::close(lock_fd_);
}

absl::StatusOr<int64_t> SqliteStore::Commit(const std::vector<Write>& writes) {
  absl::StatusOr<int64_t> rev;
  {
    std::lock_guard lock(mu_);
    if (auto st = Exec(db_, "BEGIN IMMEDIATE"); !st.ok()) return st;
    rev = CommitLocked(writes);
    if (auto st = Exec(db_, rev.ok() ? "COMMIT" : "ROLLBACK"); !st.ok()) {
      Exec(db_, "ROLLBACK").IgnoreError();
      return st;
    }
    if (!rev.ok()) return rev;
    revision_ = *rev;
  }
  notifier_.Notify(*rev);
  return rev;
}

absl::StatusOr<int64_t> SqliteStore::CommitLocked(const std::vector<Write>& writes) {
  const int64_t rev = revision_ + 1;
  int64_t seq = 0;
  for (const auto& w : writes) {
    Stmt get(db_, "SELECT resource_version, value, create_revision FROM objects "
                  "WHERE kind = ? AND ns = ? AND name = ?");
    get.BindKey(1, w.key);
    const int found = get.Step();
    if (found != SQLITE_ROW && found != SQLITE_DONE) return StepError(get);
    const bool exists = found == SQLITE_ROW;
    const int64_t current = exists ? get.Int(0) : 0;
    if (w.expected_version && *w.expected_version != current) {
      return VersionConflict(w.key, *w.expected_version, current);
    }
    if (!w.value && !exists) return MissingForDelete(w.key);
    const std::string value = w.value ? *w.value : get.Text(1);
    const int64_t create_revision = exists ? get.Int(2) : rev;

    Stmt change(db_, "INSERT INTO changes VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    change.Bind(1, rev).Bind(2, seq++).Bind(3, int64_t{w.value ? 0 : 1});
    change.BindKey(4, w.key).BindBlob(7, value);
    change.Bind(8, create_revision);
    if (change.Step() != SQLITE_DONE) return StepError(change);

    if (w.value) {
      Stmt put(db_, "INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?, ?)");
      put.BindKey(1, w.key).BindBlob(4, *w.value);
      put.Bind(5, rev).Bind(6, create_revision);
      if (put.Step() != SQLITE_DONE) return StepError(put);
    } else {
      Stmt del(db_, "DELETE FROM objects WHERE kind = ? AND ns = ? AND name = ?");
      del.BindKey(1, w.key);
      if (del.Step() != SQLITE_DONE) return StepError(del);
    }
  }
  Stmt bump(db_, "UPDATE meta SET v = ? WHERE k = 'revision'");
  bump.Bind(1, rev);
  if (bump.Step() != SQLITE_DONE) return StepError(bump);
  if (rev % 100 == 0 && rev > kChangeLogRevisions) {
    const int64_t compacted = rev - kChangeLogRevisions;
    Stmt trim(db_, "DELETE FROM changes WHERE revision <= ?");
    trim.Bind(1, compacted);
    Stmt mark(db_, "UPDATE meta SET v = ? WHERE k = 'compacted'");
    mark.Bind(1, compacted);
    if (trim.Step() != SQLITE_DONE) return StepError(trim);
    if (mark.Step() != SQLITE_DONE) return StepError(mark);
  }
  return rev;
}

absl::StatusOr<std::optional<Entry>> SqliteStore::Get(const Key& key) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT value, resource_version, create_revision FROM objects "
              "WHERE kind = ? AND ns = ? AND name = ?");
  s.BindKey(1, key);
  const int rc = s.Step();
  if (rc == SQLITE_DONE) return std::optional<Entry>();
  if (rc != SQLITE_ROW) return StepError(s);
  return std::optional<Entry>(Entry{key, s.Text(0), s.Int(1), s.Int(2)});
}

absl::StatusOr<std::vector<Entry>> SqliteStore::List(std::optional<Kind> kind, const std::string& ns) {
  std::lock_guard lock(mu_);
  // Only the conditions asked for: "?1 = '' OR kind = ?1" would read every object, since
  // SQLite cannot use the primary key (kind, ns, name) for it.
  std::string sql = "SELECT kind, ns, name, value, resource_version, create_revision FROM objects WHERE 1";
  if (kind) sql += " AND kind = ?1";
  if (!ns.empty()) sql += " AND ns = ?2";
  Stmt s(db_, (sql + " ORDER BY kind, ns, name").c_str());
  if (kind) s.Bind(1, resources::KindName(*kind));
  if (!ns.empty()) s.Bind(2, ns);
  std::vector<Entry> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    absl::StatusOr<Key> key = s.KeyAt(0);
    if (!key.ok()) return key.status();
    out.push_back(Entry{*std::move(key), s.Text(3), s.Int(4), s.Int(5)});
  }
  if (rc != SQLITE_DONE) return StepError(s);
  return out;
}

absl::StatusOr<std::optional<std::string>> SqliteStore::GetSecret(const std::string& name) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT value FROM secrets WHERE name = ? AND (expires = 0 OR expires > ?)");
  s.Bind(1, name).Bind(2, static_cast<int64_t>(std::time(nullptr)));
  const int rc = s.Step();
  if (rc == SQLITE_DONE) return std::optional<std::string>();
  if (rc != SQLITE_ROW) return StepError(s);
  return std::optional<std::string>(s.Text(0));
}

absl::StatusOr<bool> SqliteStore::CreateSecret(const std::string& name, const std::string& value, int64_t expires_unix) {
  std::lock_guard lock(mu_);
  Stmt prune(db_, "DELETE FROM secrets WHERE expires != 0 AND expires <= ?");
  prune.Bind(1, static_cast<int64_t>(std::time(nullptr)));
  if (prune.Step() != SQLITE_DONE) return StepError(prune);
  Stmt s(db_, "INSERT OR IGNORE INTO secrets (name, value, expires) VALUES (?, ?, ?)");
  s.Bind(1, name).BindBlob(2, value).Bind(3, expires_unix);
  if (s.Step() != SQLITE_DONE) return StepError(s);
  return sqlite3_changes(db_) == 1;
}

absl::Status SqliteStore::PutSecret(const std::string& name, const std::string& value) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "INSERT OR REPLACE INTO secrets (name, value, expires) VALUES (?, ?, 0)");
  s.Bind(1, name).BindBlob(2, value);
  if (s.Step() != SQLITE_DONE) return StepError(s);
  return absl::OkStatus();
}

absl::StatusOr<std::map<std::string, Store::Secret>> SqliteStore::ListSecrets() {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT name, value, expires FROM secrets WHERE expires = 0 OR expires > ? ORDER BY name");
  s.Bind(1, static_cast<int64_t>(std::time(nullptr)));
  std::map<std::string, Secret> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) out.emplace(s.Text(0), Secret{s.Text(1), s.Int(2)});
  if (rc != SQLITE_DONE) return StepError(s);
  return out;
}

absl::Status SqliteStore::DeleteSecret(const std::string& name) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "DELETE FROM secrets WHERE name = ?");
  s.Bind(1, name);
  if (s.Step() != SQLITE_DONE) return StepError(s);
  return absl::OkStatus();
}

int64_t SqliteStore::Revision() {
  std::lock_guard lock(mu_);
  return revision_;
}

absl::StatusOr<std::vector<Event>> SqliteStore::ChangesSince(int64_t since, int64_t max_revisions) {
  std::lock_guard lock(mu_);
  const int64_t compacted = MetaValue(db_, "compacted");
  if (since < compacted) {
    return absl::OutOfRangeError(
        Cat("revision ", since, " is compacted (oldest kept: ", compacted + 1, ")"));
  }
  Stmt s(db_, "SELECT revision, op, kind, ns, name, value, create_revision FROM changes "
              "WHERE revision > ? AND revision <= ? ORDER BY revision, seq");
  // Revisions are dense (one per commit), so a range holds whole revisions.
  s.Bind(1, since).Bind(2, since + max_revisions);
  std::vector<Event> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    const int64_t rev = s.Int(0);
    absl::StatusOr<Key> key = s.KeyAt(2);
    if (!key.ok()) return key.status();
    out.push_back(Event{rev, s.Int(1) == 0 ? Event::Type::kPut : Event::Type::kDelete,
                        Entry{*std::move(key), s.Text(5), rev, s.Int(6)}});
  }
  if (rc != SQLITE_DONE) return StepError(s);
  return out;
}

absl::Status SqliteStore::PutLive(const std::map<std::string, std::string>& values) {
  std::lock_guard lock(live_mu_);
  for (const auto& [name, value] : values) live_[name] = value;
  return absl::OkStatus();
}

absl::StatusOr<bool> SqliteStore::CreateLive(const std::string& name, const std::string& value) {
  std::lock_guard lock(live_mu_);
  return live_.emplace(name, value).second;
}

absl::Status SqliteStore::DeleteLive(const std::string& name) {
  std::lock_guard lock(live_mu_);
  live_.erase(name);
  return absl::OkStatus();
}

absl::StatusOr<std::map<std::string, std::string>> SqliteStore::ListLive(const std::string& prefix) {
  std::lock_guard lock(live_mu_);
  const auto from = live_.lower_bound(prefix);
  const auto to = std::find_if(from, live_.end(), [&](const auto& kv) { return kv.first.rfind(prefix, 0) != 0; });
  return std::map<std::string, std::string>(from, to);
}

Store::Subscription SqliteStore::Subscribe(std::function<void(int64_t)> fn) {
  return notifier_.Subscribe(std::move(fn));
}

}  // namespace meshplug::control_plane::store
