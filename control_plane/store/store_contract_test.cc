// The Store contract, run against both implementations: SQLite in a temporary file, and
// etcd (Debian's etcd-server, started by this test on loopback ports; each test uses its
// own key prefix). Revisions are compared with each other, never with fixed numbers:
// etcd's revision counts every write of the cluster.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <ctime>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <sstream>
#include <memory>

#include "control_plane/store/copy.h"
#include "control_plane/store/etcd_store.h"
#include "common/eventually.h"
#include "common/strings.h"
#include "control_plane/store/sqlite_store.h"
#include "integration/harness/etcd_cluster.h"
#include "integration/harness/process.h"
#include "control_plane/testing/fresh_store.h"

namespace meshplug::control_plane::store {
namespace {

using integration::harness::EtcdCluster;

// "CommitGetListAndRevisions_etcd": a file name and an etcd key prefix of its own.
std::string TestName() {
  std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  std::replace(name.begin(), name.end(), '/', '_');
  return name;
}

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/" + name;
}

// One etcd member for the whole binary, started on first use.
EtcdCluster* SharedEtcd(std::string* why) {
  static std::unique_ptr<EtcdCluster> cluster;
  static std::string unavailable = EtcdCluster::Unavailable();
  if (!unavailable.empty()) {
    *why = unavailable;
    return nullptr;
  }
  if (!cluster) {
    std::filesystem::remove_all(TempPath("etcd"));
    cluster = std::make_unique<EtcdCluster>(TempPath("etcd"), 1);
  }
  *why = cluster->error();
  return why->empty() ? cluster.get() : nullptr;
}

struct Backend {
  std::string name;
  // A fresh, empty store for the running test; nullptr and *skip set when it cannot run.
  std::function<std::unique_ptr<Store>(std::string* skip)> make;
};

std::unique_ptr<Store> MakeSqlite(std::string*) {
  auto store = SqliteStore::Open(testing::FreshStorePath(TestName()));
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? *std::move(store) : nullptr;
}

// The shared etcd, under a prefix of the running test's own; nullopt and *skip set when
// etcd cannot run here.
std::optional<EtcdStore::Options> TestEtcd(std::string* skip) {
  EtcdCluster* etcd = SharedEtcd(skip);
  if (etcd == nullptr) return std::nullopt;
  EtcdStore::Options options;
  options.endpoints = *EtcdStore::ParseUrl(etcd->url());
  options.prefix = "/" + TestName() + "/";
  return options;
}

std::unique_ptr<Store> MakeEtcd(std::string* skip) {
  auto options = TestEtcd(skip);
  if (!options) return nullptr;
  auto store = EtcdStore::Open(*options);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? *std::move(store) : nullptr;
}

class StoreContract : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    std::string skip;
    store_ = GetParam().make(&skip);
    if (!skip.empty()) GTEST_SKIP() << GetParam().name << ": " << skip;
    ASSERT_NE(store_, nullptr);
  }
  Store& s() { return *store_; }
  std::unique_ptr<Store> store_;
};

Key K(const std::string& name) { return Key{resources::Kind::kPlugin, "", name}; }

Write Put(const std::string& name, const std::string& value, std::optional<int64_t> expected = std::nullopt) {
  return Write{K(name), value, expected};
}
Write Delete(const std::string& name) { return Write{K(name), std::nullopt, std::nullopt}; }

TEST_P(StoreContract, CommitGetListAndRevisions) {
  const int64_t start = s().Revision();
  auto r1 = s().Commit({Put("a", "A1"), Put("b", "B1")});
  ASSERT_TRUE(r1.ok()) << r1.status();
  EXPECT_GT(*r1, start);
  auto r2 = s().Commit({Put("a", "A2")});
  ASSERT_TRUE(r2.ok());
  EXPECT_GT(*r2, *r1);
  EXPECT_EQ(s().Revision(), *r2);

  auto a = s().Get(K("a"));
  ASSERT_TRUE(a.ok() && a->has_value());
  EXPECT_EQ((*a)->value, "A2");
  EXPECT_EQ((*a)->resource_version, *r2);
  EXPECT_EQ((*a)->create_revision, *r1);
  EXPECT_FALSE(s().Get(K("zz"))->has_value());

  auto list = s().List(resources::Kind::kPlugin, "");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].key.name, "a");
  EXPECT_EQ((*list)[1].value, "B1");
  EXPECT_TRUE(s().List(resources::Kind::kService, "")->empty());
}

TEST_P(StoreContract, ListIsOrderedByKindNamespaceAndName) {
  using resources::Kind;
  ASSERT_TRUE(s().Commit({Write{Key{Kind::kService, "a-b", "x"}, "1", std::nullopt},
                          Write{Key{Kind::kService, "a", "y"}, "2", std::nullopt},
                          Write{Key{Kind::kPluginChain, "a", "c"}, "3", std::nullopt},
                          Write{Key{Kind::kPlugin, "", "p"}, "4", std::nullopt}})
                  .ok());
  auto all = s().List(std::nullopt, "");
  ASSERT_TRUE(all.ok());
  std::vector<std::string> order;
  for (const auto& e : *all) order.push_back(e.key.ToString());
  EXPECT_EQ(order, (std::vector<std::string>{Key{Kind::kPlugin, "", "p"}.ToString(),
                                             Key{Kind::kPluginChain, "a", "c"}.ToString(),
                                             Key{Kind::kService, "a", "y"}.ToString(),
                                             Key{Kind::kService, "a-b", "x"}.ToString()}));
  auto in_a = s().List(std::nullopt, "a");
  ASSERT_EQ(in_a->size(), 2u);
  auto services_in_a = s().List(Kind::kService, "a");
  ASSERT_EQ(services_in_a->size(), 1u);
  EXPECT_EQ((*services_in_a)[0].value, "2");
}

TEST_P(StoreContract, StaleResourceVersionIsRefusedAndNothingIsWritten) {
  ASSERT_TRUE(s().Commit({Put("a", "A1")}).ok());
  const int64_t first = (*s().Get(K("a")))->resource_version;
  auto second = s().Commit({Put("a", "A2")});
  ASSERT_TRUE(second.ok());

  // One write in the batch is stale: the whole batch fails, including "b".
  auto r = s().Commit({Put("b", "B1"), Put("a", "A3", first)});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(r.status().message(), Cat(K("a").ToString(), " was changed: its resourceVersion is ", *second, ", not ",
                                      first, "; get it again and retry"));
  EXPECT_FALSE(s().Get(K("b"))->has_value());
  EXPECT_EQ((*s().Get(K("a")))->value, "A2");
  EXPECT_EQ(s().Revision(), *second);

  EXPECT_TRUE(s().Commit({Put("a", "A3", *second)}).ok());
  auto exists = s().Commit({Put("a", "x", 0)});
  EXPECT_EQ(exists.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(exists.status().message().find("already exists"), std::string::npos) << exists.status();
  auto gone = s().Commit({Put("never", "x", 5)});
  EXPECT_EQ(gone.status().message(), Cat(K("never").ToString(), " no longer exists"));
}

TEST_P(StoreContract, DeleteMissingIsNotFound) {
  auto r = s().Commit({Delete("nope")});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(), Cat(K("nope").ToString(), " not found"));
  ASSERT_TRUE(s().Commit({Put("a", "A")}).ok());
  ASSERT_TRUE(s().Commit({Delete("a")}).ok());
  EXPECT_FALSE(s().Get(K("a"))->has_value());
}

TEST_P(StoreContract, ChangesSinceAreInOrderAndCarryDeletedValues) {
  const int64_t start = s().Revision();
  auto r1 = s().Commit({Put("a", "A1"), Put("b", "B1")});
  auto r2 = s().Commit({Put("a", "A2")});
  auto r3 = s().Commit({Delete("b")});
  ASSERT_TRUE(r1.ok() && r2.ok() && r3.ok());

  auto all = s().ChangesSince(start, 100);
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 4u);
  EXPECT_EQ((*all)[0].revision, *r1);
  EXPECT_EQ((*all)[0].entry.key.name, "a");
  EXPECT_EQ((*all)[1].entry.key.name, "b");
  EXPECT_EQ((*all)[2].revision, *r2);
  EXPECT_EQ((*all)[2].entry.value, "A2");
  EXPECT_EQ((*all)[3].type, Event::Type::kDelete);
  EXPECT_EQ((*all)[3].revision, *r3);
  EXPECT_EQ((*all)[3].entry.value, "B1");
  EXPECT_EQ((*all)[3].entry.create_revision, *r1);

  auto tail = s().ChangesSince(*r2, 100);
  ASSERT_EQ(tail->size(), 1u);
  EXPECT_EQ((*tail)[0].revision, *r3);
  EXPECT_EQ(s().ChangesSince(start, 1)->size(), 2u);  // the first revision holds two changes
}

TEST_P(StoreContract, SubscribersHearEveryCommitUntilUnsubscribed) {
  std::atomic<int64_t> last{0};
  auto sub = s().Subscribe([&](int64_t rev) { last = rev; });
  auto r1 = s().Commit({Put("a", "A")});
  ASSERT_TRUE(r1.ok());
  // SQLite tells subscribers before Commit returns, etcd when its watch sees the change.
  EXPECT_TRUE(Eventually([&] { return last == *r1; }, std::chrono::milliseconds(5000)));
  sub.reset();
  ASSERT_TRUE(s().Commit({Put("a", "B")}).ok());
  EXPECT_EQ(last, *r1);
}

TEST_P(StoreContract, SecretsAreCreatedOnceAndKeptApartFromResources) {
  const int64_t start = s().Revision();
  EXPECT_FALSE(s().GetSecret("ca")->has_value());
  EXPECT_TRUE(*s().CreateSecret("ca", "first", 0));
  EXPECT_FALSE(*s().CreateSecret("ca", "second", 0));  // the first stays
  EXPECT_EQ(**s().GetSecret("ca"), "first");
  EXPECT_TRUE(s().List(std::nullopt, "")->empty());
  EXPECT_TRUE(s().ChangesSince(start, 100)->empty());
}

TEST_P(StoreContract, ExpiredSecretsAreGoneAndTheirNamesFreeAgain) {
  const int64_t past = std::time(nullptr) - 1;
  EXPECT_TRUE(*s().CreateSecret("used/1", "x", past));
  EXPECT_FALSE(s().GetSecret("used/1")->has_value());
  EXPECT_TRUE(*s().CreateSecret("used/1", "y", std::time(nullptr) + 3600));
  EXPECT_EQ(**s().GetSecret("used/1"), "y");
  EXPECT_FALSE(*s().CreateSecret("used/1", "z", std::time(nullptr) + 3600));
  ASSERT_TRUE(*s().CreateSecret("kept", "k", 0));
  auto all = s().ListSecrets();
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ(all->at("kept").value, "k");
  EXPECT_EQ(all->at("kept").expires_unix, 0);
  EXPECT_EQ(all->at("used/1").value, "y");
  EXPECT_NEAR(static_cast<double>(all->at("used/1").expires_unix), static_cast<double>(std::time(nullptr) + 3600), 5);
}

TEST_P(StoreContract, PutSecretReplacesAndDeleteRemoves) {
  ASSERT_TRUE(s().PutSecret("ca", "old").ok());
  ASSERT_TRUE(s().PutSecret("ca", "new").ok());
  EXPECT_EQ(**s().GetSecret("ca"), "new");
  ASSERT_TRUE(s().DeleteSecret("ca").ok());
  EXPECT_FALSE(s().GetSecret("ca")->has_value());
  EXPECT_TRUE(s().DeleteSecret("never-there").ok());
}

TEST_P(StoreContract, LiveValuesAreListedByPrefixAndCreateIsExclusive) {
  ASSERT_TRUE(s().PutLive({{"agents/a", "1"}, {"agents/b", "2"}, {"agentsx", "3"}}).ok());
  ASSERT_TRUE(s().PutLive({{"agents/a", "4"}}).ok());
  auto listed = s().ListLive("agents/");
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(*listed, (std::map<std::string, std::string>{{"agents/a", "4"}, {"agents/b", "2"}}));
  EXPECT_TRUE(*s().CreateLive("leader", "me"));
  EXPECT_FALSE(*s().CreateLive("leader", "someone else"));
  EXPECT_EQ(s().ListLive("leader")->at("leader"), "me");
  ASSERT_TRUE(s().DeleteLive("leader").ok());
  EXPECT_TRUE(*s().CreateLive("leader", "next"));
  EXPECT_TRUE(s().List(std::nullopt, "")->empty());  // not resources
}

// etcd: another replica sees a replica's live values, which go when it stops.
TEST(EtcdStore, LiveValuesAreSharedAndGoWithTheirReplica) {
  std::string skip;
  const auto options = TestEtcd(&skip);
  if (!options) GTEST_SKIP() << skip;
  auto first = EtcdStore::Open(*options);
  auto second = EtcdStore::Open(*options);
  ASSERT_TRUE(first.ok() && second.ok());
  ASSERT_TRUE((*first)->PutLive({{"agents/a", "on first"}}).ok());
  EXPECT_TRUE(*(*first)->CreateLive("leader", "first"));
  EXPECT_FALSE(*(*second)->CreateLive("leader", "second"));
  EXPECT_EQ((*second)->ListLive("agents/")->at("agents/a"), "on first");
  first->reset();
  EXPECT_TRUE((*second)->ListLive("agents/")->empty());
  EXPECT_TRUE(*(*second)->CreateLive("leader", "second"));
}

// etcd: when a replica's lease ends anyway (etcd was away longer than its TTL; here it is
// revoked behind its back), the replica writes its live values again under a new one.
TEST(EtcdStore, LiveValuesAreWrittenAgainWhenTheLeaseEnds) {
  std::string skip;
  auto options = TestEtcd(&skip);
  if (!options) GTEST_SKIP() << skip;
  options->live_ttl = std::chrono::seconds(3);
  auto replica = EtcdStore::Open(*options);
  auto other = EtcdStore::Open(*options);
  ASSERT_TRUE(replica.ok() && other.ok());
  std::map<std::string, std::string> statuses;
  for (int i = 0; i < 150; ++i) statuses[Cat("agents/", i)] = "up";
  ASSERT_TRUE((*replica)->PutLive(statuses).ok());  // in two transactions (100 + 50)
  ASSERT_EQ((*other)->ListLive("agents/")->size(), 150u);
  ASSERT_TRUE(*(*replica)->CreateLive("leader", "replica"));
  auto leases = integration::harness::Run({"/usr/bin/etcdctl", "--endpoints", options->endpoints[0], "lease", "list"}, "",
                                          std::chrono::milliseconds(10000), {"ETCDCTL_API=3"});
  ASSERT_EQ(leases.exit_code, 0) << leases.err;
  std::istringstream ids(leases.out);
  for (std::string id; ids >> id;) {
    if (id.find_first_not_of("0123456789abcdef") != std::string::npos) continue;  // the header
    integration::harness::Run({"/usr/bin/etcdctl", "--endpoints", options->endpoints[0], "lease", "revoke", id}, "",
                              std::chrono::milliseconds(10000), {"ETCDCTL_API=3"});
  }
  EXPECT_TRUE(Eventually([&] { return (*other)->ListLive("agents/")->size() == 150 && (*other)->ListLive("leader")->size() == 1; },
                         std::chrono::milliseconds(10000)));
  EXPECT_FALSE(*(*other)->CreateLive("leader", "other"));
}

// More objects than one page of etcd's answer: all of them, in order.
TEST_P(StoreContract, ListsMoreThanOnePage) {
  for (int batch = 0; batch < 11; ++batch) {
    std::vector<Write> writes;
    for (int i = 0; i < 100; ++i) writes.push_back(Put(Cat("p", 1000 + batch * 100 + i), "x"));
    ASSERT_TRUE(s().Commit(writes).ok());
  }
  auto all = s().List(resources::Kind::kPlugin, "");
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 1100u);
  EXPECT_EQ(all->front().key.name, "p1000");
  EXPECT_EQ(all->back().key.name, "p2099");
}

// etcd: a commit made through one replica is in another's change log.
TEST(EtcdStore, ReplicasSeeEachOthersCommits) {
  std::string skip;
  const auto options = TestEtcd(&skip);
  if (!options) GTEST_SKIP() << skip;
  auto a = EtcdStore::Open(*options);
  auto b = EtcdStore::Open(*options);
  ASSERT_TRUE(a.ok() && b.ok());
  const int64_t start = (*b)->Revision();
  auto rev = (*a)->Commit({Put("x", "X")});
  ASSERT_TRUE(rev.ok());
  ASSERT_TRUE(Eventually([&] { return (*b)->Revision() >= *rev; }, std::chrono::milliseconds(5000)));
  auto changes = (*b)->ChangesSince(start, 10);
  ASSERT_EQ(changes->size(), 1u);
  EXPECT_EQ((*changes)[0].entry.value, "X");
  EXPECT_EQ((*changes)[0].revision, *rev);
}

// etcd: a replica whose watch was away while the revisions it missed were compacted
// starts its change log again (readers get OUT_OF_RANGE and re-list) and sees the present.
TEST(EtcdStore, AWatchThatMissedCompactedRevisionsStartsTheLogAgain) {
  if (auto why = EtcdCluster::Unavailable(); !why.empty()) GTEST_SKIP() << why;
  std::filesystem::remove_all(TempPath("etcd3"));
  EtcdCluster cluster(TempPath("etcd3"), 3);
  ASSERT_EQ(cluster.error(), "");
  EtcdStore::Options only_first;
  only_first.endpoints = {cluster.endpoint(0)};
  EtcdStore::Options others;
  others.endpoints = {cluster.endpoint(1), cluster.endpoint(2)};
  auto a = EtcdStore::Open(only_first);
  auto b = EtcdStore::Open(others);
  ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
  ASSERT_TRUE((*a)->Commit({Put("x", "1")}).ok());
  const int64_t seen = (*a)->Revision();
  std::atomic<int64_t> told{0};
  auto sub = (*a)->Subscribe([&](int64_t rev) { told = rev; });

  cluster.Kill(0);
  auto during = (*b)->Commit({Put("x", "2")});
  ASSERT_TRUE(during.ok()) << during.status();
  auto last = (*b)->Commit({Put("y", "3")});
  ASSERT_TRUE(last.ok()) << last.status();
  auto compact = integration::harness::Run({"/usr/bin/etcdctl", "--endpoints", cluster.endpoint(1), "compact",
                                            std::to_string(*last)},
                                           "", std::chrono::milliseconds(10000), {"ETCDCTL_API=3"});
  ASSERT_EQ(compact.exit_code, 0) << compact.err;
  ASSERT_EQ(cluster.Restart(0), "");

  ASSERT_TRUE(Eventually([&] { return (*a)->Revision() >= *last; }, std::chrono::milliseconds(20000)));
  EXPECT_TRUE(Eventually([&] { return told >= *last; }, std::chrono::milliseconds(5000)));  // told after the reset
  auto missed = (*a)->ChangesSince(seen, 100);
  EXPECT_EQ(missed.status().code(), absl::StatusCode::kOutOfRange) << missed.status();
  EXPECT_EQ((*(*a)->Get(K("x")))->value, "2");
  EXPECT_EQ((*a)->List(resources::Kind::kPlugin, "")->size(), 2u);
  // After the new start the log works as before.
  auto next = (*b)->Commit({Put("z", "4")});
  ASSERT_TRUE(Eventually([&] { return (*a)->Revision() >= *next; }, std::chrono::milliseconds(5000)));
  EXPECT_EQ((*a)->ChangesSince(*last, 10)->size(), 1u);
}

// A mesh copied from SQLite to etcd and back: the same objects and secrets, resource
// versions in the same order; a store that holds a mesh is not copied into.
TEST(StoreCopy, SqliteToEtcdAndBackKeepsObjectsSecretsAndOrder) {
  std::string skip;
  const auto options = TestEtcd(&skip);
  if (!options) GTEST_SKIP() << skip;
  auto sqlite = MakeSqlite(&skip);
  ASSERT_TRUE(sqlite->Commit({Put("a", "A1"), Put("b", "B1")}).ok());
  ASSERT_TRUE(sqlite->Commit({Put("c", "C1")}).ok());
  ASSERT_TRUE(sqlite->Commit({Put("a", "A2")}).ok());  // a is now newer than c
  ASSERT_TRUE(sqlite->Commit({Put("gone", "x")}).ok());
  ASSERT_TRUE(sqlite->Commit({Delete("gone")}).ok());
  ASSERT_TRUE(*sqlite->CreateSecret("ca", "key", 0));
  ASSERT_TRUE(*sqlite->CreateSecret("used/1", "t", std::time(nullptr) + 600));
  auto in_etcd = EtcdStore::Open(*options);
  ASSERT_TRUE(in_etcd.ok());

  auto there = CopyStore(*sqlite, **in_etcd);
  ASSERT_TRUE(there.ok()) << there.status();
  EXPECT_EQ(there->objects, 3);
  EXPECT_EQ(there->commits, 3);  // b, c, then a: by the revision of their last change
  EXPECT_EQ(there->secrets, 2);

  auto back = SqliteStore::Open(testing::FreshStorePath(TestName() + "-back"));
  ASSERT_TRUE(back.ok());
  ASSERT_TRUE(CopyStore(**in_etcd, **back).ok());
  for (Store* s : {static_cast<Store*>(in_etcd->get()), static_cast<Store*>(back->get())}) {
    auto list = s->List(std::nullopt, "");
    ASSERT_EQ(list->size(), 3u) << s->Describe();
    std::map<std::string, Entry> by_name;
    for (auto& e : *list) by_name[e.key.name] = e;
    EXPECT_EQ(by_name["a"].value, "A2");
    EXPECT_EQ(by_name["b"].value, "B1");
    EXPECT_LT(by_name["b"].resource_version, by_name["c"].resource_version) << s->Describe();
    EXPECT_LT(by_name["c"].resource_version, by_name["a"].resource_version) << s->Describe();
    EXPECT_EQ(**s->GetSecret("ca"), "key");
    EXPECT_NEAR(static_cast<double>(s->ListSecrets()->at("used/1").expires_unix),
                static_cast<double>(std::time(nullptr) + 600), 5);
  }
  auto again = CopyStore(*sqlite, **in_etcd);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().message(),
            (*in_etcd)->Describe() + " already holds a mesh (3 objects, 2 secrets); copy into an empty store");
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreContract,
                         ::testing::Values(Backend{"sqlite", MakeSqlite}, Backend{"etcd", MakeEtcd}),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace meshplug::control_plane::store
