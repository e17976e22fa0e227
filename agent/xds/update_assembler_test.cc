// Which responses make an update and what answers them, with time given by the test: no
// sockets, no threads, no sleeps.
#include "agent/xds/update_assembler.h"

#include <gtest/gtest.h>

#include <set>

#include "agent/xds/test_resources.h"

namespace meshplug::agent::xds {
namespace {

using namespace testing_resources;
using std::chrono::milliseconds;

const AssemblerTiming kTiming{milliseconds(1), milliseconds(100), milliseconds(500), milliseconds(15000)};
const absl::StatusOr<std::vector<std::string>> kApplied = std::vector<std::string>{};
const Clock::time_point T0 = Clock::time_point() + std::chrono::hours(1);

// A response that puts `set`'s resources of one type (nonce "n<k>", version "v<k>").
class Responses {
 public:
  explicit Responses(UpdateAssembler& a) : a_(a) {}

  std::optional<Answer> Send(const std::string& type, const ResourceSet& from, Clock::time_point at) {
    ++k_;
    return a_.OnResponse(type, "n" + std::to_string(k_), "v" + std::to_string(k_),
                         [&](ResourceSet& into) {
                           for (const auto& [name, e] : from.Of(type)) into.Put(type, name, e);
                           return absl::OkStatus();
                         },
                         at);
  }
  // Every type `set` has, 0.1 ms apart from `at`.
  void SendAll(const ResourceSet& set, Clock::time_point at) {
    for (const auto& type : xds_types::TypeUrls()) {
      if (set.Of(type).empty()) continue;
      EXPECT_FALSE(Send(type, set, at));
      at += std::chrono::microseconds(100);
    }
  }

 private:
  UpdateAssembler& a_;
  int k_ = 0;
};

// Polls at each deadline the assembler names until it returns something (at most 5 times).
UpdateAssembler::Due PollUntilDue(UpdateAssembler& a) {
  for (int i = 0; i < 5; ++i) {
    std::optional<Clock::time_point> at = a.NextDeadline();
    if (!at) break;
    auto d = a.Poll(*at);
    if (d.update || !d.answers.empty()) return d;
  }
  return {};
}

std::set<std::string> TypesOf(const std::vector<Answer>& answers, bool acks) {
  std::set<std::string> out;
  for (const auto& a : answers) {
    if (a.error.has_value() != acks) out.insert(ShortType(a.type_url));
  }
  return out;
}

TEST(UpdateAssemblerTest, OnePushIsOneUpdateAndEveryTypeIsAcked) {
  UpdateAssembler a(kTiming);
  a.StartStream();
  Responses r(a);
  r.SendAll(Complete(), T0);
  EXPECT_FALSE(a.Poll(T0).update) << "still settling";
  ASSERT_TRUE(a.NextDeadline());
  const Clock::time_point due = *a.NextDeadline();
  EXPECT_LE(due, T0 + kTiming.settle_max);
  auto d = a.Poll(due);
  ASSERT_TRUE(d.update);
  EXPECT_EQ(d.update->snapshot.version(), Complete().Assemble().version());
  EXPECT_EQ(d.update->first_response, T0);
  const auto answers = a.Applied(*d.update, kApplied);
  EXPECT_EQ(TypesOf(answers, true),
            (std::set<std::string>{"PluginScript", "Cluster", "Endpoints", "Service", "ChainSet"}));
  EXPECT_TRUE(a.running_any());
  EXPECT_EQ(a.running().size(), Complete().size());
  EXPECT_FALSE(a.NextDeadline()) << "nothing pending";
}

TEST(UpdateAssemblerTest, AnIncompleteUpdateWaitsThenIsNackedWithWhatIsMissingAndAckedOnceComplete) {
  UpdateAssembler a(kTiming);
  a.StartStream();
  Responses r(a);
  ResourceSet without_script = Complete();
  without_script.Remove(UrlOf<v1::PluginScript>(), "audit@1");
  r.SendAll(without_script, T0);
  auto d = a.Poll(*a.NextDeadline());
  EXPECT_FALSE(d.update);
  EXPECT_TRUE(d.answers.empty());
  ASSERT_TRUE(a.NextDeadline());
  EXPECT_GE(*a.NextDeadline(), T0 + kTiming.incomplete_timeout);
  d = a.Poll(*a.NextDeadline());
  ASSERT_EQ(TypesOf(d.answers, false).size(), 4u);
  EXPECT_EQ(*d.answers[0].error, "incomplete configuration, still missing: PluginScript \"audit@1\" "
                                 "(chain outbound-http, module audit)");
  EXPECT_FALSE(a.running_any());
  // The script arrives later: the whole update applies and every type is ACKed, the
  // NACKed ones too.
  const Clock::time_point later = T0 + std::chrono::seconds(20);
  EXPECT_FALSE(r.Send(UrlOf<v1::PluginScript>(), Complete(), later));
  d = PollUntilDue(a);
  ASSERT_TRUE(d.update);
  EXPECT_EQ(TypesOf(a.Applied(*d.update, kApplied), true).size(), 5u);
}

TEST(UpdateAssemblerTest, AResponseThatDoesNotMergeIsNackedAtOnceAndChangesNothing) {
  UpdateAssembler a(kTiming);
  a.StartStream();
  auto nack = a.OnResponse(UrlOf<v1::Cluster>(), "n1", "v1",
                           [](ResourceSet&) {
                             return absl::InvalidArgumentError("a Cluster resource does not parse");
                           },
                           T0);
  ASSERT_TRUE(nack);
  EXPECT_EQ(nack->nonce, "n1");
  EXPECT_EQ(*nack->error, "Cluster v1: a Cluster resource does not parse");
  EXPECT_FALSE(a.NextDeadline());
  auto unknown = a.OnResponse("type.googleapis.com/envoy.config.listener.v3.Listener", "n2", "v2",
                              [](ResourceSet&) { return absl::OkStatus(); }, T0);
  ASSERT_TRUE(unknown);
  EXPECT_NE(unknown->error->find("unknown resource type"), std::string::npos);
}

TEST(UpdateAssemblerTest, AFailedApplyNacksWithTheErrorAndTheRunningVersion) {
  UpdateAssembler a(kTiming);
  ResourceSet running = Complete();
  running.SetTypeVersion(UrlOf<v1::ChainSet>(), "old");
  a.Adopt(running, running.Assemble().version());
  a.StartStream();
  Responses r(a);
  ResourceSet next = Complete();
  Put(next, "chains", Chains("audit@2"));
  Put(next, "audit@2", Script("audit@2"));
  next.Remove(UrlOf<v1::PluginScript>(), "audit@1");
  EXPECT_FALSE(r.Send(UrlOf<v1::PluginScript>(), next, T0));
  EXPECT_FALSE(r.Send(UrlOf<v1::ChainSet>(), next, T0));
  auto d = PollUntilDue(a);
  ASSERT_TRUE(d.update);
  const auto answers = a.Applied(*d.update, absl::InvalidArgumentError("script does not load"));
  ASSERT_EQ(answers.size(), 2u);
  for (const auto& ans : answers) {
    EXPECT_EQ(*ans.error, "script does not load");
    if (ans.type_url == UrlOf<v1::ChainSet>()) {
      EXPECT_EQ(ans.running_version, "old");
    }
  }
  EXPECT_EQ(a.running().Of(UrlOf<v1::ChainSet>()).size(), 1u);
  EXPECT_TRUE(a.running().Of(UrlOf<v1::PluginScript>()).count("audit@1")) << "the old set keeps running";
}

TEST(UpdateAssemblerTest, IsolatedFailuresAreNackedOnThePluginScriptTypeWhileTheUpdateRuns) {
  UpdateAssembler a(kTiming);
  a.StartStream();
  Responses r(a);
  r.SendAll(Complete(), T0);
  auto d = PollUntilDue(a);
  ASSERT_TRUE(d.update);
  const auto answers = a.Applied(*d.update, std::vector<std::string>{"module \"audit\" did not load: boom"});
  EXPECT_EQ(TypesOf(answers, false), (std::set<std::string>{"PluginScript"}));
  EXPECT_EQ(TypesOf(answers, true), (std::set<std::string>{"Cluster", "Endpoints", "Service", "ChainSet"}));
  for (const auto& ans : answers) {
    if (ans.error) {
      EXPECT_EQ(*ans.error, "module \"audit\" did not load: boom");
    }
  }
  EXPECT_TRUE(a.running_any()) << "the update runs";
}

TEST(UpdateAssemblerTest, ANewClusterWaitsForItsEndpointsOnlyUntilWarmingEnds) {
  UpdateAssembler a(kTiming);
  a.StartStream();
  Responses r(a);
  ResourceSet set = Complete();
  set.Remove(UrlOf<v1::Endpoints>(), "web.shop|80");
  r.SendAll(set, T0);
  auto d = a.Poll(T0 + kTiming.settle_max);
  EXPECT_FALSE(d.update) << "waiting for the endpoints of web.shop|80";
  EXPECT_EQ(*a.NextDeadline(), T0 + kTiming.endpoints_warming);
  d = a.Poll(*a.NextDeadline());
  ASSERT_TRUE(d.update) << "applied without them";
  a.Applied(*d.update, kApplied);
  // The cluster runs without endpoints now: a later update does not wait for them again.
  Put(set, "other", Service("other", "web.shop|80"));
  const Clock::time_point later = T0 + std::chrono::seconds(5);
  EXPECT_FALSE(r.Send(UrlOf<v1::Service>(), set, later));
  d = a.Poll(later + kTiming.settle);
  EXPECT_TRUE(d.update) << "no second wait";
}

TEST(UpdateAssemblerTest, ResourcesNothingReferencesYetWaitForTheRestOfThePush) {
  UpdateAssembler a(kTiming);
  a.Adopt(Complete(), Complete().Assemble().version());
  a.StartStream();
  Responses r(a);
  ResourceSet next = Complete();
  Put(next, "audit@2", Script("audit@2"));  // the chain set naming it comes next
  EXPECT_FALSE(r.Send(UrlOf<v1::PluginScript>(), next, T0));
  auto d = a.Poll(T0 + kTiming.settle);
  EXPECT_FALSE(d.update) << "held";
  EXPECT_EQ(*a.NextDeadline(), T0 + kTiming.settle_max);
  Put(next, "chains", Chains("audit@2"));
  EXPECT_FALSE(r.Send(UrlOf<v1::ChainSet>(), next, T0 + milliseconds(50)));
  d = PollUntilDue(a);
  ASSERT_TRUE(d.update);
  EXPECT_EQ(d.update->snapshot.chains().outbound_http(0).script(), "audit@2");
}

// A page of a cluster's Endpoints ("<cluster>#k") belongs to its cluster: an update that
// brings one is applied once it settles, not held for the rest of a push.
TEST(UpdateAssemblerTest, AnEndpointsPageIsAppliedWithoutWaitingForMore) {
  UpdateAssembler a(kTiming);
  a.Adopt(Complete(), Complete().Assemble().version());
  a.StartStream();
  Responses r(a);
  ResourceSet next = Complete();
  v1::Endpoints page = Endpoints("web.shop|80");
  page.set_page(1);
  page.add_endpoints()->set_address("10.0.0.9");
  Put(next, "web.shop|80#1", page);
  EXPECT_FALSE(r.Send(UrlOf<v1::Endpoints>(), next, T0));
  auto d = a.Poll(T0 + kTiming.settle);
  ASSERT_TRUE(d.update) << "held";
  int pages = 0;
  for (const v1::Endpoints& e : d.update->snapshot.endpoints()) pages += e.cluster() == "web.shop|80";
  EXPECT_EQ(pages, 2);
}

TEST(UpdateAssemblerTest, WhatAlreadyRunsIsConfirmedWithoutApplying) {
  UpdateAssembler a(kTiming);
  a.Adopt(Complete(), Complete().Assemble().version());  // e.g. the saved configuration
  a.StartStream();
  Responses r(a);
  r.SendAll(Complete(), T0);
  auto d = PollUntilDue(a);
  EXPECT_FALSE(d.update);
  EXPECT_TRUE(d.confirmed);
  EXPECT_EQ(TypesOf(d.answers, true).size(), 5u);
}

TEST(UpdateAssemblerTest, ANewStreamResumesFromWhatRunsAndForgetsWhatWasPending) {
  UpdateAssembler a(kTiming);
  a.Adopt(Complete(), Complete().Assemble().version());
  a.StartStream();
  Responses r(a);
  ResourceSet partial;
  Put(partial, "other", Service("other", "nowhere"));
  EXPECT_FALSE(r.Send(UrlOf<v1::Service>(), partial, T0));
  ASSERT_TRUE(a.NextDeadline());
  a.StartStream();
  EXPECT_FALSE(a.NextDeadline());
  EXPECT_EQ(a.running().size(), Complete().size());
}

}  // namespace
}  // namespace meshplug::agent::xds
