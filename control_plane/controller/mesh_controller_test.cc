// The controller against a real store: registration and the grace period, status written
// back to resources, shared encodings.
#include "control_plane/controller/mesh_controller.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "common/agent_id.h"
#include "control_plane/api/resource_api.h"
#include "common/eventually.h"
#include "control_plane/store/sqlite_store.h"
#include "control_plane/testing/admin_requests.h"
#include "control_plane/testing/mesh_fixtures.h"
#include "control_plane/xds/node_identity.h"
#include "control_plane/testing/endpoint_count.h"
#include "control_plane/testing/fresh_store.h"

namespace meshplug::control_plane::controller {
namespace {

using std::chrono::milliseconds;


// Two namespaces without labels and one service: the curl agent's only destination.
const std::string kMesh = std::string(R"(
apiVersion: v1
kind: Namespace
metadata: {name: curl}
---
apiVersion: v1
kind: Namespace
metadata: {name: httpbin}
---
apiVersion: v1
kind: Service
metadata: {name: httpbin, namespace: httpbin}
spec: {ports: [{port: 14001}], selector: {app: httpbin}}
---)") + testing::kPluginPolicyOn + "---\n" + testing::PluginYaml("p", 115) + "---\n" +
                          testing::PluginChainYaml("curl", "c", "outbound-http", "p, ghost") + R"(---
apiVersion: plugin.flomesh.io/v1alpha1
kind: PluginConfig
metadata: {name: first, namespace: curl}
spec: {plugin: p, destinationRefs: [{kind: Service, name: httpbin, namespace: httpbin}], config: {v: 1}}
---
apiVersion: plugin.flomesh.io/v1alpha1
kind: PluginConfig
metadata: {name: second, namespace: curl}
spec: {plugin: p, destinationRefs: [{kind: Service, name: httpbin, namespace: httpbin}], config: {v: 2}}
)";

mesh::v1::Workload Agent(const std::string& name, const std::string& ns, const std::string& app) {
  mesh::v1::Workload wl;
  wl.set_api_version("meshplug.io/v1");
  wl.set_kind("Workload");
  wl.mutable_metadata()->set_name(name);
  wl.mutable_metadata()->set_namespace_(ns);
  (*wl.mutable_metadata()->mutable_labels())["app"] = app;
  (*wl.mutable_metadata()->mutable_annotations())[xds::kRegisteredBy] = "agent";
  wl.mutable_spec()->set_address("127.0.0.1");
  wl.mutable_spec()->set_inbound_port(15003);
  return wl;
}

class MeshControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = testing::FreshSqliteStore(::testing::UnitTest::GetInstance()->current_test_info()->name());
    api_ = std::make_unique<api::ResourceApi>(*store_);
    const v1::ApplyRequest req = testing::ApplyRequestFor(kMesh);
    ASSERT_TRUE(api_->Apply(req).ok());
    controller_ = std::make_unique<MeshController>(*store_, cache_, registry_,
                                                   Options{.quiet = milliseconds(5), .max_delay = milliseconds(50), .grace = milliseconds(300)});
    ASSERT_TRUE(controller_->Start().ok());
    api_ = std::make_unique<api::ResourceApi>(*store_, &controller_->status());
  }

  template <typename T>
  T Get(const std::string& kind, const std::string& ns, const std::string& name) {
    v1::GetRequest req;
    req.set_kind(kind);
    req.set_namespace_(ns);
    req.set_name(name);
    auto resp = api_->Get(req);
    EXPECT_TRUE(resp.ok()) << resp.status();
    T out;
    if (resp.ok()) resp->objects(0).UnpackTo(&out);
    return out;
  }

  // Applies `yaml` and waits until the controller published it.
  void Apply(const std::string& yaml) {
    const v1::ApplyRequest req = testing::ApplyRequestFor(yaml);
    ASSERT_TRUE(api_->Apply(req).ok());
    ASSERT_TRUE(controller_->WaitForRevision(store_->Revision(), milliseconds(5000)));
  }
  // Deletes an object and waits until the controller published it.
  void Delete(const std::string& kind, const std::string& ns, const std::string& name) {
    ASSERT_TRUE(api_->Delete(testing::DeleteRequestFor(kind, ns, name)).ok());
    ASSERT_TRUE(controller_->WaitForRevision(store_->Revision(), milliseconds(5000)));
  }
  // An agent that connected and registered: no grace period removes it. Its stream's id.
  uint64_t Join(const std::string& name, const std::string& ns, const std::string& app, const std::string& address = "127.0.0.1") {
    const uint64_t stream = registry_.Connected(AgentId(ns, name), "delta", "test");
    auto wl = Agent(name, ns, app);
    wl.mutable_spec()->set_address(address);
    EXPECT_TRUE(controller_->Register(wl).ok());
    return stream;
  }

  // Whether every one of `agents` got resources and everything stored is published.
  bool AllPublished(const std::vector<std::string>& agents) {
    return Eventually([&] {
             return std::all_of(agents.begin(), agents.end(), [&](const auto& a) { return cache_.Get(a) != nullptr; });
           }) &&
           controller_->WaitForRevision(store_->Revision(), milliseconds(5000));
  }
  // How many times each of `agents` was translated.
  std::vector<int64_t> Translations(const std::vector<std::string>& agents) const {
    std::vector<int64_t> out;
    for (const auto& a : agents) out.push_back(controller_->Translations(a));
    return out;
  }

  bool WorkloadStored(const std::string& ns, const std::string& name) {
    auto e = store_->Get(resources::Key{resources::Kind::kWorkload, ns, name});
    return e.ok() && e->has_value();
  }

  std::unique_ptr<store::SqliteStore> store_;
  std::unique_ptr<api::ResourceApi> api_;
  xds::SnapshotCache cache_;
  xds::AgentRegistry registry_;
  std::unique_ptr<MeshController> controller_;
};

TEST_F(MeshControllerTest, RegisteredAgentsGetSnapshotsAndGoAfterTheGracePeriod) {
  ASSERT_TRUE(controller_->Register(Agent("curl-1", "curl", "curl")).ok());
  ASSERT_TRUE(Eventually([&] { return cache_.Get("curl/curl-1") != nullptr; }));
  EXPECT_TRUE(WorkloadStored("curl", "curl-1"));

  // A stream ends; within the grace period the agent comes back: it stays.
  const uint64_t stream = registry_.Connected("curl/curl-1", "delta", "test");
  registry_.Disconnected("curl/curl-1", stream);
  controller_->Disconnected("curl/curl-1");
  ASSERT_TRUE(controller_->Register(Agent("curl-1", "curl", "curl")).ok());
  registry_.Connected("curl/curl-1", "delta", "test");

  // Registering in a namespace that does not exist is refused.
  const auto refused = controller_->Register(Agent("x", "nowhere", "x"));
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);

  // An agent that stays away is removed after the grace period, with its snapshot.
  ASSERT_TRUE(controller_->Register(Agent("httpbin-1", "httpbin", "httpbin")).ok());
  ASSERT_TRUE(Eventually([&] { return WorkloadStored("httpbin", "httpbin-1"); }));
  const uint64_t s2 = registry_.Connected("httpbin/httpbin-1", "delta", "test");
  registry_.Disconnected("httpbin/httpbin-1", s2);
  controller_->Disconnected("httpbin/httpbin-1");
  ASSERT_TRUE(Eventually([&] { return !WorkloadStored("httpbin", "httpbin-1"); }));
  ASSERT_TRUE(Eventually([&] { return cache_.Get("httpbin/httpbin-1") == nullptr; }));
  // curl-1's grace deadline passed long before httpbin-1's: it reconnected, so it stayed.
  EXPECT_TRUE(WorkloadStored("curl", "curl-1"));
}

// Registrations that no control plane saw their agent leave (its replica died with it,
// or the control plane was down): the leader gives them the grace period, then removes
// them; one whose agent is connected, and Workloads a user applied, stay.
TEST_F(MeshControllerTest, TheLeaderRemovesRegistrationsWhoseAgentVanishedUnseen) {
  controller_.reset();
  auto put = [&](const mesh::v1::Workload& wl) {
    ASSERT_TRUE(store_->Commit({store::Write{resources::Key{resources::Kind::kWorkload, wl.metadata().namespace_(),
                                                            wl.metadata().name()},
                                             wl.SerializeAsString(), std::nullopt}})
                    .ok());
  };
  put(Agent("gone-1", "curl", "curl"));
  put(Agent("here-1", "curl", "curl"));
  mesh::v1::Workload applied = Agent("applied-1", "curl", "curl");
  applied.mutable_metadata()->clear_annotations();
  put(applied);
  registry_.Connected("curl/here-1", "delta", "test");
  controller_ = std::make_unique<MeshController>(
      *store_, cache_, registry_, Options{.quiet = milliseconds(5),
                                          .max_delay = milliseconds(50),
                                          .grace = milliseconds(300),
                                          .orphan_scan = milliseconds(50)});
  ASSERT_TRUE(controller_->Start().ok());
  EXPECT_TRUE(Eventually([&] { return !WorkloadStored("curl", "gone-1"); }));
  EXPECT_TRUE(WorkloadStored("curl", "here-1"));
  EXPECT_TRUE(WorkloadStored("curl", "applied-1"));
  EXPECT_EQ(store_->ListLive("leader/")->size(), 1u);  // it took the role
}

// A registered Workload deleted while its agent is still connected here (by another
// replica that could not see this one's agents, or by hand) is registered again.
TEST_F(MeshControllerTest, AConnectedAgentsDeletedRegistrationComesBack) {
  ASSERT_TRUE(controller_->Register(Agent("curl-1", "curl", "curl")).ok());
  registry_.Connected("curl/curl-1", "delta", "test");
  ASSERT_TRUE(Eventually([&] { return WorkloadStored("curl", "curl-1"); }));
  const auto stored = store_->Get(resources::Key{resources::Kind::kWorkload, "curl", "curl-1"});
  ASSERT_TRUE(store_->Commit({store::Write{resources::Key{resources::Kind::kWorkload, "curl", "curl-1"}, std::nullopt,
                                           (*stored)->resource_version}})
                  .ok());
  EXPECT_TRUE(Eventually([&] { return WorkloadStored("curl", "curl-1"); }));
  EXPECT_TRUE(Eventually([&] { return cache_.Get("curl/curl-1") != nullptr; }));
}

TEST_F(MeshControllerTest, StatusShowsAgentsMissingPluginsAndConflicts) {
  ASSERT_TRUE(controller_->Register(Agent("curl-1", "curl", "curl")).ok());
  ASSERT_TRUE(Eventually([&] { return cache_.Get("curl/curl-1") != nullptr; }));

  const auto plugin = Get<mesh::v1::Plugin>("Plugin", "", "p");
  ASSERT_EQ(plugin.status().agents_size(), 1);
  EXPECT_EQ(plugin.status().agents(0), "curl/curl-1");

  const auto chain = Get<mesh::v1::PluginChain>("PluginChain", "curl", "c");
  EXPECT_EQ(chain.status().matched_agents(0), "curl/curl-1");
  ASSERT_EQ(chain.status().missing_plugins_size(), 1);
  EXPECT_EQ(chain.status().missing_plugins(0), "ghost");

  const auto first = Get<mesh::v1::PluginConfig>("PluginConfig", "curl", "first");
  const auto second = Get<mesh::v1::PluginConfig>("PluginConfig", "curl", "second");
  EXPECT_EQ(first.status().agents(0), "curl/curl-1");
  EXPECT_EQ(second.status().agents_size(), 0);  // the older one wins
  ASSERT_EQ(second.status().conflicts_size(), 1);
  EXPECT_EQ(second.status().conflicts(0), first.status().conflicts(0));

  const auto wl = Get<mesh::v1::Workload>("Workload", "curl", "curl-1");
  EXPECT_FALSE(wl.status().connected());
  registry_.Connected("curl/curl-1", "delta", "test");
  EXPECT_TRUE(Get<mesh::v1::Workload>("Workload", "curl", "curl-1").status().connected());
}

TEST_F(MeshControllerTest, IdenticalResourcesAreEncodedOnce) {
  ASSERT_TRUE(controller_->Register(Agent("a", "curl", "curl")).ok());
  ASSERT_TRUE(controller_->Register(Agent("b", "curl", "curl")).ok());
  ASSERT_TRUE(Eventually([&] { return cache_.Get("curl/a") && cache_.Get("curl/b") &&
                                      cache_.Get("curl/a")->Of(xds_types::UrlOf<v1::Service>()).size() == 1; }));
  ASSERT_TRUE(controller_->WaitForRevision(store_->Revision(), milliseconds(5000)));
  const auto a = cache_.Get("curl/a");
  const auto b = cache_.Get("curl/b");
  // Same chains, same services: the very same encodings; only the identity differs.
  EXPECT_EQ(a->Of(xds_types::UrlOf<v1::ChainSet>()).at("chains"), b->Of(xds_types::UrlOf<v1::ChainSet>()).at("chains"));
  EXPECT_EQ(a->Of(xds_types::UrlOf<v1::Service>()).at("httpbin.httpbin"), b->Of(xds_types::UrlOf<v1::Service>()).at("httpbin.httpbin"));
  EXPECT_NE(a->Of(xds_types::UrlOf<v1::AgentSettings>()).at("agent"), b->Of(xds_types::UrlOf<v1::AgentSettings>()).at("agent"));
}

// A PluginConfig change reuses the encoded destinations; a Service change makes new ones.
TEST_F(MeshControllerTest, DestinationsAreMadeAgainOnlyWhenWhatTheyAreMadeOfChanges) {
  ASSERT_TRUE(controller_->Register(Agent("curl-1", "curl", "curl")).ok());
  ASSERT_TRUE(Eventually([&] { return cache_.Get("curl/curl-1") != nullptr; }));
  ASSERT_TRUE(controller_->WaitForRevision(store_->Revision(), milliseconds(5000)));
  const auto before = cache_.Get("curl/curl-1");
  Apply("apiVersion: plugin.flomesh.io/v1alpha1\nkind: PluginConfig\nmetadata: {name: first, namespace: curl}\n"
        "spec: {plugin: p, destinationRefs: [{kind: Service, name: httpbin, namespace: httpbin}], config: {v: 9}}\n");
  const auto after_config = cache_.Get("curl/curl-1");
  ASSERT_NE(after_config, before);  // the agent's own part changed
  ASSERT_TRUE(before->base && after_config->base);
  EXPECT_EQ(after_config->base, before->base);
  Apply("apiVersion: v1\nkind: Service\nmetadata: {name: other, namespace: httpbin}\n"
        "spec: {ports: [{port: 80}], selector: {app: other}}\n");
  EXPECT_NE(cache_.Get("curl/curl-1")->base, before->base);
}

// A workload joining is translated alone: the others get its endpoint under their own part
// as it was, and agents whose egress hosts do not reach its Service are left as they were.
TEST_F(MeshControllerTest, AWorkloadJoiningTranslatesOnlyItself) {
  Apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: scoped, annotations: {meshplug.io/egress-hosts: \"./*\"}}\n");
  Join("curl-1", "curl", "curl");
  Join("s-1", "scoped", "s");
  Join("httpbin-1", "httpbin", "httpbin");
  ASSERT_TRUE(Eventually([&] { return cache_.Get("curl/curl-1") && cache_.Get("scoped/s-1") && cache_.Get("httpbin/httpbin-1"); }));
  ASSERT_TRUE(controller_->WaitForRevision(store_->Revision(), milliseconds(5000)));
  const auto endpoints = [&](const std::string& agent) {
    return testing::EndpointCount(*cache_.Get(agent), "httpbin.httpbin|14001");
  };
  ASSERT_EQ(endpoints("curl/curl-1"), 1u);
  const int64_t curl = controller_->Translations("curl/curl-1");
  const int64_t httpbin = controller_->Translations("httpbin/httpbin-1");
  const auto scoped = cache_.Get("scoped/s-1");
  const auto curl_own = cache_.Get("curl/curl-1")->own;

  const uint64_t stream = Join("httpbin-2", "httpbin", "httpbin", "127.0.0.2");
  ASSERT_TRUE(Eventually([&] { return endpoints("curl/curl-1") == 2u; }));
  ASSERT_TRUE(controller_->WaitForRevision(store_->Revision(), milliseconds(5000)));
  EXPECT_EQ(endpoints("httpbin/httpbin-1"), 2u);
  EXPECT_EQ(controller_->Translations("httpbin/httpbin-2"), 1);
  EXPECT_EQ(controller_->Translations("curl/curl-1"), curl);
  EXPECT_EQ(controller_->Translations("httpbin/httpbin-1"), httpbin);
  EXPECT_EQ(cache_.Get("curl/curl-1")->own, curl_own);  // the same encodings, moved onto the new endpoints
  EXPECT_EQ(cache_.Get("scoped/s-1"), scoped);          // may not call httpbin: left as it was

  // Leaving: the endpoint goes from the others, still without translating them.
  registry_.Disconnected("httpbin/httpbin-2", stream);
  Delete("Workload", "httpbin", "httpbin-2");
  ASSERT_TRUE(Eventually([&] { return endpoints("curl/curl-1") == 1u; }));
  EXPECT_EQ(controller_->Translations("curl/curl-1"), curl);
}

// A Service change translates the agents it selects and those holding a copy of it for a
// PluginConfig; the others get it with their destinations.
TEST_F(MeshControllerTest, AServiceChangeTranslatesOnlyTheAgentsThatHoldIt) {
  // s-1 may call no Service of httpbin: it holds no copy of one.
  Apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: scoped, annotations: {meshplug.io/egress-hosts: \"./*\"}}\n");
  Join("curl-1", "curl", "curl");
  Join("httpbin-1", "httpbin", "httpbin");
  Join("other-1", "httpbin", "other");
  Join("s-1", "scoped", "s");
  const std::vector<std::string> agents = {"curl/curl-1", "httpbin/httpbin-1", "httpbin/other-1", "scoped/s-1"};
  ASSERT_TRUE(AllPublished(agents));
  auto translations = [&] { return Translations(agents); };
  auto ports = [&](const std::string& agent, const std::string& service) {
    std::vector<uint32_t> out;
    if (const xds::EncodedResource* r = cache_.Get(agent)->Find(xds_types::UrlOf<v1::Service>(), service)) {
      v1::Service s;
      EXPECT_TRUE(s.ParseFromString(std::string(r->Value())));
      for (const auto& p : s.ports()) out.push_back(p.port());
    }
    return out;
  };
  const auto start = translations();

  // A new Service selecting other-1: only other-1 translated (its inbound side); every
  // agent has it as a destination.
  Apply("apiVersion: v1\nkind: Service\nmetadata: {name: other, namespace: httpbin}\n"
        "spec: {ports: [{port: 80}], selector: {app: other}}\n");
  EXPECT_EQ(translations(), (std::vector<int64_t>{start[0], start[1], start[2] + 1, start[3]}));
  EXPECT_EQ(ports("curl/curl-1", "other.httpbin"), std::vector<uint32_t>{80});
  EXPECT_EQ(ports("httpbin/other-1", "other.httpbin|inbound"), std::vector<uint32_t>{80});

  // httpbin gains a port: all mount plugin p (chain c selects every workload), whose
  // PluginConfigs name httpbin, so each holds a copy of it with the config (s-1 would, if
  // it could call httpbin).
  Apply("apiVersion: v1\nkind: Service\nmetadata: {name: httpbin, namespace: httpbin}\n"
        "spec: {ports: [{port: 14001}, {port: 14002}], selector: {app: httpbin}}\n");
  EXPECT_EQ(translations(), (std::vector<int64_t>{start[0] + 1, start[1] + 1, start[2] + 2, start[3] + 1}));
  EXPECT_EQ(ports("curl/curl-1", "httpbin.httpbin"), (std::vector<uint32_t>{14001, 14002}));
  EXPECT_EQ(ports("httpbin/other-1", "httpbin.httpbin"), (std::vector<uint32_t>{14001, 14002}));

  // A route of httpbin leads to v2: the copies of httpbin follow v2 coming and going (its
  // routes only name Services that exist).
  Apply("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: split, namespace: httpbin}\n"
        "spec:\n  parentRefs: [{name: httpbin, port: 14001}]\n  rules: [{backendRefs: [{name: v2, port: 14001}]}]\n");
  auto routes_to_v2 = [&] {
    const xds::EncodedResource* r = cache_.Get("curl/curl-1")->Find(xds_types::UrlOf<v1::Service>(), "httpbin.httpbin");
    v1::Service s;
    EXPECT_TRUE(r && s.ParseFromString(std::string(r->Value())));
    for (const auto& route : s.routes()) {
      for (const auto& c : route.clusters()) {
        if (c.cluster() == "v2.httpbin|14001") return true;
      }
    }
    return false;
  };
  EXPECT_FALSE(routes_to_v2());
  const auto with_route = translations();
  Apply("apiVersion: v1\nkind: Service\nmetadata: {name: v2, namespace: httpbin}\nspec: {ports: [{port: 14001}], selector: {app: v2}}\n");
  EXPECT_TRUE(routes_to_v2());
  Delete("Service", "httpbin", "v2");
  EXPECT_FALSE(routes_to_v2());
  EXPECT_EQ(translations()[0], with_route[0] + 2) << "curl holds a copy of httpbin";
  EXPECT_EQ(translations()[3], with_route[3]) << "s-1 holds none";

  // Deleting other: other-1 loses its inbound side.
  Delete("Service", "httpbin", "other");
  EXPECT_EQ(translations()[2], with_route[2] + 3);  // v2 twice (a copy of httpbin), then other
  EXPECT_TRUE(ports("httpbin/other-1", "other.httpbin|inbound").empty());
  EXPECT_TRUE(ports("curl/curl-1", "other.httpbin").empty());
}

// A Plugin whose script alone changes is not translated again: its agents get the new
// script resource in place of the old, under the same name, and their chain sets stay the
// very same encodings. A new priority moves the plugin in the chains: then they are.
TEST_F(MeshControllerTest, AScriptChangeReplacesTheScriptWithoutTranslatingTheAgents) {
  Join("curl-1", "curl", "curl");
  Join("curl-2", "curl", "curl");
  Join("httpbin-1", "httpbin", "httpbin");
  const std::vector<std::string> agents = {"curl/curl-1", "curl/curl-2", "httpbin/httpbin-1"};  // chain c: all
  ASSERT_TRUE(AllPublished(agents));
  auto translations = [&] { return Translations(agents); };
  const std::string& scripts = xds_types::UrlOf<v1::PluginScript>();
  const std::string& chains = xds_types::UrlOf<v1::ChainSet>();
  auto script_of = [&](const std::string& agent) {
    v1::PluginScript s;
    const xds::EncodedResource* r = cache_.Get(agent)->Find(scripts, "p");
    EXPECT_TRUE(r && s.ParseFromString(std::string(r->Value()))) << agent;
    return s;
  };
  const auto start = translations();
  const auto before = cache_.Get("curl/curl-1");

  Apply(testing::PluginYaml("p", 115, "function on_request(req, ctx) req.headers:set('x-v', '2') end"));
  EXPECT_EQ(translations(), start);
  const auto after = cache_.Get("curl/curl-1");
  EXPECT_EQ(script_of("curl/curl-1").source(), "function on_request(req, ctx) req.headers:set('x-v', '2') end");
  EXPECT_EQ(script_of("curl/curl-1").version(), std::to_string(store_->Revision()));
  EXPECT_EQ(cache_.Get("curl/curl-2")->Find(scripts, "p"), after->Find(scripts, "p")) << "one encoding for both";
  EXPECT_EQ(after->Find(chains, "chains"), before->Find(chains, "chains"));
  EXPECT_EQ(after->TypeVersion(chains), before->TypeVersion(chains));
  EXPECT_NE(after->TypeVersion(scripts), before->TypeVersion(scripts));
  EXPECT_NE(after->version, before->version);
  EXPECT_EQ(after->base, before->base);
  // What a translation makes now, the replacement made: an agent joining now gets the same.
  Join("curl-3", "curl", "curl");
  ASSERT_TRUE(AllPublished({"curl/curl-3"}));
  EXPECT_EQ(cache_.Get("curl/curl-3")->Find(scripts, "p"), after->Find(scripts, "p"));
  EXPECT_EQ(cache_.Get("curl/curl-3")->TypeVersion(scripts), after->TypeVersion(scripts));
  EXPECT_EQ(cache_.Get("curl/curl-3")->TypeVersion(chains), after->TypeVersion(chains));

  Apply(testing::PluginYaml("p", 300, "function on_request(req, ctx) end"));
  EXPECT_EQ(translations(), (std::vector<int64_t>{start[0] + 1, start[1] + 1, start[2] + 1}))
      << "a new priority reorders the chains";
  EXPECT_NE(cache_.Get("curl/curl-1")->TypeVersion(chains), after->TypeVersion(chains));
  EXPECT_EQ(script_of("curl/curl-1").source(), "function on_request(req, ctx) end");

  // One commit with a new script and a PluginChain that matches httpbin-1 alone: httpbin-1
  // is translated (and gets the script so), the others get it in place; one encoding.
  const auto mixed = translations();
  Apply(testing::PluginYaml("p", 300, "function on_request(req, ctx) req.headers:set('x-v', '3') end") + "---\n" +
        testing::PluginChainYaml("httpbin", "h", "outbound-http", "ghost-2", testing::AppSelector("httpbin")));
  EXPECT_EQ(translations(), (std::vector<int64_t>{mixed[0], mixed[1], mixed[2] + 1}));
  for (const auto& agent : agents) {
    EXPECT_EQ(script_of(agent).source(), "function on_request(req, ctx) req.headers:set('x-v', '3') end") << agent;
    EXPECT_EQ(cache_.Get(agent)->Find(scripts, "p"), cache_.Get("curl/curl-1")->Find(scripts, "p")) << agent;
  }

  // One commit with a new script and a new Service, which every agent gets as a
  // destination: each agent gets both in one update, not the script and then the Service.
  std::mutex mu;
  std::map<std::string, int> updates;  // under mu
  std::vector<std::shared_ptr<void>> watches;
  for (const auto& agent : agents) {
    watches.push_back(cache_.Watch(agent, [&mu, &updates, agent](const xds::Resources&) {
      std::lock_guard lock(mu);
      ++updates[agent];
    }));
  }
  const auto translated = translations();
  Apply(testing::PluginYaml("p", 300, "function on_request(req, ctx) req.headers:set('x-v', '4') end") + "---\n" +
        "apiVersion: v1\nkind: Service\nmetadata: {name: extra, namespace: curl}\nspec: {ports: [{port: 81}]}\n");
  EXPECT_EQ(translations(), translated);
  std::lock_guard lock(mu);
  for (const auto& agent : agents) {
    EXPECT_EQ(updates[agent], 1) << agent;
    EXPECT_EQ(script_of(agent).source(), "function on_request(req, ctx) req.headers:set('x-v', '4') end") << agent;
    EXPECT_NE(cache_.Get(agent)->Find(xds_types::UrlOf<v1::Service>(), "extra.curl"), nullptr) << agent;
  }
}

// A Plugin that a chain names before it exists: the agents whose chains missed it are
// translated when it comes (found through the index of missing plugins), and a Plugin
// no chain names translates no one.
TEST_F(MeshControllerTest, APluginThatChainsMissedTranslatesTheAgentsThatMissedIt) {
  Join("curl-1", "curl", "curl");
  Join("httpbin-1", "httpbin", "httpbin");
  const std::vector<std::string> agents = {"curl/curl-1", "httpbin/httpbin-1"};  // chain c names ghost: both
  ASSERT_TRUE(AllPublished(agents));
  const auto start = Translations(agents);

  Apply(testing::PluginYaml("unused", 200));
  EXPECT_EQ(Translations(agents), start);

  Apply(testing::PluginYaml("ghost", 200));
  EXPECT_EQ(Translations(agents), (std::vector<int64_t>{start[0] + 1, start[1] + 1}));
  const auto ghost = Get<mesh::v1::Plugin>("Plugin", "", "ghost");
  ASSERT_EQ(ghost.status().agents_size(), 2);
  EXPECT_TRUE(Get<mesh::v1::PluginChain>("PluginChain", "curl", "c").status().missing_plugins().empty());
}

// What the cache holds for an agent is scoped by its namespace's egress hosts, and a
// change of them reaches the agents at once (a Namespace change concerns everyone).
TEST_F(MeshControllerTest, AgentsReceiveOnlyTheServicesTheirEgressHostsAllow) {
  ASSERT_TRUE(controller_->Register(Agent("curl-1", "curl", "curl")).ok());
  ASSERT_TRUE(controller_->Register(Agent("httpbin-1", "httpbin", "httpbin")).ok());
  auto destinations = [&](const std::string& agent) {
    std::set<std::string> out;
    if (auto r = cache_.Get(agent)) {
      for (const auto& [name, _] : r->Of(xds_types::UrlOf<v1::Service>())) {
        if (name.find("|inbound") == std::string::npos) out.insert(name);
      }
    }
    return out;
  };
  const std::set<std::string> httpbin = {"httpbin.httpbin"};
  ASSERT_TRUE(Eventually([&] { return destinations("curl/curl-1") == httpbin; }));
  Apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: curl, annotations: {meshplug.io/egress-hosts: \"./*\"}}\n");
  EXPECT_EQ(destinations("curl/curl-1"), std::set<std::string>{});  // no Service in curl
  EXPECT_EQ(destinations("httpbin/httpbin-1"), httpbin);              // unannotated: everything
  const auto encoded = cache_.Get("curl/curl-1");
  for (const auto& [name, _] : encoded->Of(xds_types::UrlOf<v1::Cluster>())) {
    EXPECT_NE(name.rfind("httpbin.httpbin|", 0), 0u) << name;
  }
}

}  // namespace
}  // namespace meshplug::control_plane::controller
