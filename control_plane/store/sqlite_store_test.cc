#include "control_plane/store/sqlite_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>

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

}  // namespace
}  // namespace meshplug::control_plane::store
