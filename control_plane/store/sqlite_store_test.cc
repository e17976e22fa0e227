#include "control_plane/store/sqlite_store.h"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <atomic>
#include <ctime>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace meshplug::control_plane::store {
namespace {

std::string TempDb(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path = std::string(dir ? dir : "/tmp") + "/" + name + ".db";
  for (const char* suffix : {"", "-wal", "-shm", ".lock"}) std::filesystem::remove(path + suffix);
  return path;
}

Key K(const std::string& name) { return Key{resources::Kind::kPlugin, "", name}; }

Write Put(const std::string& name, const std::string& value,
          std::optional<int64_t> expected = std::nullopt) {
  return Write{K(name), value, expected};
}

TEST(SqliteStore, CommitGetListAndRevisions) {
  auto store = SqliteStore::Open(TempDb("basic"));
  ASSERT_TRUE(store.ok()) << store.status();
  auto& s = **store;
  EXPECT_EQ(s.Revision(), 0);
  auto r1 = s.Commit({Put("a", "A1"), Put("b", "B1")});
  ASSERT_TRUE(r1.ok());
  EXPECT_EQ(*r1, 1);
  auto r2 = s.Commit({Put("a", "A2")});
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(*r2, 2);

  auto a = s.Get(K("a"));
  ASSERT_TRUE(a.ok() && a->has_value());
  EXPECT_EQ((*a)->value, "A2");
  EXPECT_EQ((*a)->resource_version, 2);
  EXPECT_EQ((*a)->create_revision, 1);

  auto list = s.List(resources::Kind::kPlugin, "");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].key.name, "a");
  EXPECT_EQ((*list)[1].value, "B1");
  EXPECT_TRUE(s.List(resources::Kind::kService, "")->empty());
}

TEST(SqliteStore, StaleResourceVersionIsRefusedAndNothingIsWritten) {
  auto store = SqliteStore::Open(TempDb("stale"));
  auto& s = **store;
  ASSERT_TRUE(s.Commit({Put("a", "A1")}).ok());  // rv 1
  ASSERT_TRUE(s.Commit({Put("a", "A2")}).ok());  // rv 2

  // One write in the batch is stale: the whole batch fails, including "b".
  auto r = s.Commit({Put("b", "B1"), Put("a", "A3", /*expected=*/1)});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(r.status().message()).find("resourceVersion is 2, not 1"), std::string::npos)
      << r.status();
  EXPECT_FALSE(s.Get(K("b"))->has_value());
  EXPECT_EQ((*s.Get(K("a")))->value, "A2");
  EXPECT_EQ(s.Revision(), 2);

  EXPECT_TRUE(s.Commit({Put("a", "A3", 2)}).ok());
  auto exists = s.Commit({Put("a", "x", 0)});
  EXPECT_EQ(exists.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(SqliteStore, DeleteMissingIsNotFound) {
  auto store = SqliteStore::Open(TempDb("delete"));
  auto& s = **store;
  auto r = s.Commit({Write{K("nope"), std::nullopt, std::nullopt}});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(s.Commit({Put("a", "A")}).ok());
  ASSERT_TRUE(s.Commit({Write{K("a"), std::nullopt, std::nullopt}}).ok());
  EXPECT_FALSE(s.Get(K("a"))->has_value());
}

TEST(SqliteStore, ChangesSinceAreInOrderAndCarryDeletedValues) {
  auto store = SqliteStore::Open(TempDb("watch"));
  auto& s = **store;
  ASSERT_TRUE(s.Commit({Put("a", "A1"), Put("b", "B1")}).ok());
  ASSERT_TRUE(s.Commit({Put("a", "A2")}).ok());
  ASSERT_TRUE(s.Commit({Write{K("b"), std::nullopt, std::nullopt}}).ok());

  auto all = s.ChangesSince(0, 100);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 4u);
  EXPECT_EQ((*all)[0].revision, 1);
  EXPECT_EQ((*all)[0].entry.key.name, "a");
  EXPECT_EQ((*all)[1].entry.key.name, "b");
  EXPECT_EQ((*all)[2].revision, 2);
  EXPECT_EQ((*all)[2].entry.value, "A2");
  EXPECT_EQ((*all)[3].type, Event::Type::kDelete);
  EXPECT_EQ((*all)[3].entry.value, "B1");

  auto tail = s.ChangesSince(2, 100);
  ASSERT_EQ(tail->size(), 1u);
  EXPECT_EQ((*tail)[0].revision, 3);
  EXPECT_EQ(s.ChangesSince(0, 1)->size(), 2u);  // revision 1 holds two changes
}

TEST(SqliteStore, SubscribersHearEveryCommitUntilUnsubscribed) {
  auto store = SqliteStore::Open(TempDb("subscribe"));
  auto& s = **store;
  std::atomic<int64_t> last{0};
  auto sub = s.Subscribe([&](int64_t rev) { last = rev; });
  ASSERT_TRUE(s.Commit({Put("a", "A")}).ok());
  EXPECT_EQ(last, 1);
  sub.reset();
  ASSERT_TRUE(s.Commit({Put("a", "B")}).ok());
  EXPECT_EQ(last, 1);
}

TEST(SqliteStore, SurvivesReopenAndRefusesASecondOpener) {
  const std::string path = TempDb("reopen");
  {
    auto store = SqliteStore::Open(path);
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->Commit({Put("a", "A1")}).ok());
    ASSERT_TRUE((*store)->Commit({Put("b", "B1")}).ok());
    auto second = SqliteStore::Open(path);
    ASSERT_FALSE(second.ok());
    EXPECT_NE(std::string(second.status().message()).find("in use by another control plane"),
              std::string::npos);
  }
  auto store = SqliteStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->Revision(), 2);
  EXPECT_EQ((*(*store)->Get(K("a")))->value, "A1");
  EXPECT_EQ((*store)->ChangesSince(0, 10)->size(), 2u);
}

// Runs SQL on a database file directly, as another program (or a careless operator) would.
void Sql(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  sqlite3_close(db);
}

std::string OpenError(const std::string& path) {
  auto store = SqliteStore::Open(path);
  return store.ok() ? "" : std::string(store.status().message());
}

TEST(SqliteStore, RefusesAStoreThatIsNotOursOrIsDamagedAndSaysWhatToDo) {
  const std::string damaged = TempDb("damaged");
  {
    auto s = SqliteStore::Open(damaged);
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->Commit({Put("a", "A")}).ok());
  }
  Sql(damaged, "DROP TABLE objects");
  EXPECT_EQ(OpenError(damaged), "store " + damaged +
                                    " is not usable: it is damaged: table objects is missing. Restore it from a backup, "
                                    "or start an empty mesh there with --store_init (the file is kept aside)");

  const std::string foreign = TempDb("foreign");
  Sql(foreign, "CREATE TABLE accounts (id INTEGER)");
  EXPECT_NE(OpenError(foreign).find("it is another program's SQLite database"), std::string::npos);
  Sql(foreign, "PRAGMA application_id = 1234");
  EXPECT_NE(OpenError(foreign).find("another program's SQLite database (application id 1234)"), std::string::npos);

  const std::string empty = TempDb("empty");
  std::ofstream(empty).close();
  EXPECT_NE(OpenError(empty).find("is not usable: it is empty"), std::string::npos);

  const std::string garbage = TempDb("garbage");
  std::ofstream(garbage) << std::string(4096, 'x');
  EXPECT_NE(OpenError(garbage).find("it is not an SQLite database"), std::string::npos) << OpenError(garbage);

  const std::string newer = TempDb("newer");
  ASSERT_TRUE(SqliteStore::Open(newer).ok());
  Sql(newer, "PRAGMA user_version = 99");
  EXPECT_NE(OpenError(newer).find("written by a newer meshplug (schema 99, this one reads 1)"), std::string::npos);
}

TEST(SqliteStore, InitKeepsAnUnusableFileAsideButNeverReplacesAUsableStore) {
  const std::string path = TempDb("init");
  std::ofstream(path) << "not a database, but someone's file";
  auto fresh = SqliteStore::Open(path, SqliteStore::Mode::kInit);
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_EQ((*fresh)->Revision(), 0);
  ASSERT_TRUE((*fresh)->Commit({Put("a", "A")}).ok());
  fresh->reset();
  bool kept = false;
  for (const auto& f : std::filesystem::directory_iterator(std::filesystem::path(path).parent_path())) {
    kept = kept || f.path().filename().string().rfind("init.db.damaged-", 0) == 0;
  }
  EXPECT_TRUE(kept);
  auto again = SqliteStore::Open(path, SqliteStore::Mode::kInit);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find("is a usable store"), std::string::npos);
  auto reopened = SqliteStore::Open(path);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ((*reopened)->Revision(), 1);
}

// Stores written before the application id existed open and get it.
TEST(SqliteStore, AdoptsAStoreOfAnEarlierMeshplug) {
  const std::string path = TempDb("earlier");
  {
    auto s = SqliteStore::Open(path);
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->Commit({Put("a", "A")}).ok());
  }
  Sql(path, "PRAGMA application_id = 0; PRAGMA user_version = 0");
  auto s = SqliteStore::Open(path);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*s)->Revision(), 1);
}

TEST(SqliteStoreSecrets, CreatedOnceKeptApartFromResourcesAndOnlyTheOwnerReadsTheFile) {
  const std::string path = TempDb("secrets");
  {
    auto store = SqliteStore::Open(path);
    ASSERT_TRUE(store.ok());
    EXPECT_FALSE((*store)->GetSecret("ca")->has_value());
    EXPECT_TRUE(*(*store)->CreateSecret("ca", "first", 0));
    EXPECT_FALSE(*(*store)->CreateSecret("ca", "second", 0));  // the first stays
    EXPECT_EQ((*store)->Revision(), 0);                     // not a resource change
    EXPECT_TRUE((*store)->List(std::nullopt, "")->empty());
  }
  auto store = SqliteStore::Open(path);
  ASSERT_TRUE(store.ok());
  EXPECT_EQ(**(*store)->GetSecret("ca"), "first");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(SqliteStoreSecrets, ExpiredSecretsAreGoneAndTheirNamesFreeAgain) {
  auto store = SqliteStore::Open(TempDb("secrets-expiry"));
  ASSERT_TRUE(store.ok());
  const int64_t past = std::time(nullptr) - 1;
  EXPECT_TRUE(*(*store)->CreateSecret("used/1", "x", past));
  EXPECT_FALSE((*store)->GetSecret("used/1")->has_value());
  EXPECT_TRUE(*(*store)->CreateSecret("used/1", "y", std::time(nullptr) + 3600));
  EXPECT_EQ(**(*store)->GetSecret("used/1"), "y");
}

TEST(SqliteStoreSecrets, PutReplacesAndDeleteRemoves) {
  auto store = SqliteStore::Open(TempDb("secrets-put"));
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->PutSecret("ca", "old").ok());
  ASSERT_TRUE((*store)->PutSecret("ca", "new").ok());
  EXPECT_EQ(**(*store)->GetSecret("ca"), "new");
  ASSERT_TRUE((*store)->DeleteSecret("ca").ok());
  EXPECT_FALSE((*store)->GetSecret("ca")->has_value());
  EXPECT_TRUE((*store)->DeleteSecret("never-there").ok());
  EXPECT_EQ((*store)->Revision(), 0);
}

}  // namespace
}  // namespace meshplug::control_plane::store
