#include "control_plane/store/sqlite_store.h"
#include "control_plane/testing/fresh_store.h"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <atomic>
#include <ctime>
#include <filesystem>
#include <fstream>

namespace meshplug::control_plane::store {
namespace {

Key K(const std::string& name) { return Key{resources::Kind::kPlugin, "", name}; }

Write Put(const std::string& name, const std::string& value,
          std::optional<int64_t> expected = std::nullopt) {
  return Write{K(name), value, expected};
}

TEST(SqliteStore, SurvivesReopenAndRefusesASecondOpener) {
  const std::string path = testing::FreshStorePath("reopen");
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
  const std::string damaged = testing::FreshStorePath("damaged");
  {
    auto s = SqliteStore::Open(damaged);
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->Commit({Put("a", "A")}).ok());
  }
  Sql(damaged, "DROP TABLE objects");
  EXPECT_EQ(OpenError(damaged), "store " + damaged +
                                    " is not usable: it is damaged: table objects is missing. Restore it from a backup, "
                                    "or start an empty mesh there with --store_init (the file is kept aside)");

  const std::string foreign = testing::FreshStorePath("foreign");
  Sql(foreign, "CREATE TABLE accounts (id INTEGER)");
  EXPECT_NE(OpenError(foreign).find("it is another program's SQLite database"), std::string::npos);
  Sql(foreign, "PRAGMA application_id = 1234");
  EXPECT_NE(OpenError(foreign).find("another program's SQLite database (application id 1234)"), std::string::npos);

  const std::string empty = testing::FreshStorePath("empty");
  std::ofstream(empty).close();
  EXPECT_NE(OpenError(empty).find("is not usable: it is empty"), std::string::npos);

  const std::string garbage = testing::FreshStorePath("garbage");
  std::ofstream(garbage) << std::string(4096, 'x');
  EXPECT_NE(OpenError(garbage).find("it is not an SQLite database"), std::string::npos) << OpenError(garbage);

  const std::string newer = testing::FreshStorePath("newer");
  ASSERT_TRUE(SqliteStore::Open(newer).ok());
  Sql(newer, "PRAGMA user_version = 99");
  EXPECT_NE(OpenError(newer).find("written by a newer meshplug (schema 99, this one reads 1)"), std::string::npos);
}

TEST(SqliteStore, InitKeepsAnUnusableFileAsideButNeverReplacesAUsableStore) {
  const std::string path = testing::FreshStorePath("init");
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
  const std::string path = testing::FreshStorePath("earlier");
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

// The rest of the contract is in store_contract_test.cc, shared with etcd.
TEST(SqliteStoreSecrets, KeptAcrossRestartsOutsideTheRevisionsAndOnlyTheOwnerReadsTheFile) {
  const std::string path = testing::FreshStorePath("secrets");
  {
    auto store = SqliteStore::Open(path);
    ASSERT_TRUE(store.ok());
    EXPECT_TRUE(*(*store)->CreateSecret("ca", "first", 0));
    EXPECT_EQ((*store)->Revision(), 0);  // not a resource change
  }
  auto store = SqliteStore::Open(path);
  ASSERT_TRUE(store.ok());
  EXPECT_EQ(**(*store)->GetSecret("ca"), "first");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

}  // namespace
}  // namespace meshplug::control_plane::store
