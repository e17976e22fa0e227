// docs/spec.md §3 rule by rule, on states built from manifests.
#include "control_plane/translate/translate.h"

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "common/xds_types.h"
#include "control_plane/testing/mesh_fixtures.h"
#include "control_plane/testing/mesh_state_yaml.h"
#include "resources/manifest.h"
#include "control_plane/testing/whole_translation.h"
#include "control_plane/translate/selector.h"

namespace meshplug::control_plane::translate {
namespace {

using control_plane::testing::WholeTranslation;

const std::string kMesh = std::string(control_plane::testing::kCurlHttpbinMesh) + R"(---
apiVersion: meshplug.io/v1
kind: Workload
metadata: {name: curl-1, namespace: curl, labels: {app: curl}}
spec: {address: 127.0.0.2, inboundPort: 15003, serviceAccount: curl}
---
apiVersion: meshplug.io/v1
kind: Workload
metadata: {name: httpbin-1, namespace: httpbin, labels: {app: httpbin}}
spec: {address: 127.0.0.3, inboundPort: 15003, serviceAccount: httpbin}
)";

constexpr const char* kPluginsOn = control_plane::testing::kPluginPolicyOn;

using testing::AppSelector;
using testing::PluginChainYaml;
using testing::PluginYaml;

std::string Config(const std::string& ns, const std::string& name, const std::string& plugin,
                   const std::string& service, const std::string& config) {
  return "apiVersion: plugin.flomesh.io/v1alpha1\nkind: PluginConfig\nmetadata: {name: " + name +
         ", namespace: " + ns + "}\nspec:\n  plugin: " + plugin +
         "\n  destinationRefs: [{kind: Service, name: " + service.substr(0, service.find('.')) +
         ", namespace: " + service.substr(service.find('.') + 1) + "}]\n  config: " + config + "\n";
}

void Add(MeshState& state, const std::string& yaml) { control_plane::testing::AddYaml(state, yaml); }

MeshState State(const std::string& yaml) {
  MeshState s;
  Add(s, std::string(kMesh) + "---\n" + yaml);
  return s;
}

const mesh::v1::Workload& Agent(const MeshState& s, const std::string& ns, const std::string& name) {
  return s.workloads.at({ns, name});
}

std::vector<std::string> Names(const google::protobuf::RepeatedPtrField<v1::ChainModule>& chain) {
  std::vector<std::string> out;
  for (const auto& m : chain) out.push_back(m.name());
  return out;
}

const v1::Service& Svc(const v1::Snapshot& snap, const std::string& name, bool inbound) {
  for (const auto& s : snap.services()) {
    if (s.name() == name && s.inbound() == inbound) return s;
  }
  static const v1::Service kNone;
  ADD_FAILURE() << "no service " << name << (inbound ? " (inbound)" : " (outbound)");
  return kNone;
}

using Strings = std::vector<std::string>;

TEST(Translate, BuiltinChainsWhenNoPlugins) {
  const MeshState s = State(PluginChainYaml("curl", "c", "outbound-http", "p"));  // plugins off
  const auto t = WholeTranslation(s, Agent(s, "curl", "curl-1"));
  EXPECT_EQ(Names(t.snapshot.chains().outbound_http()),
            (Strings{"http-routing", "metrics", "tracing", "logging", "circuit-breaker", "http-load-balancing",
                     "http-default"}));
  EXPECT_EQ(Names(t.snapshot.chains().inbound_tcp()),
            (Strings{"tls-termination", "tcp-routing", "tcp-load-balancing", "tcp-default"}));
  EXPECT_EQ(Names(t.snapshot.chains().outbound_tcp()), (Strings{"tcp-routing", "tcp-load-balancing", "tcp-default"}));
  EXPECT_TRUE(t.report.matched_chains.empty());
  EXPECT_TRUE(t.snapshot.scripts().empty());
}

TEST(Translate, ReferenceScenarioStep2PutsPluginsBetweenTheirNeighbours) {
  const MeshState s = State(std::string(kPluginsOn) + "---\n" + PluginYaml("token-injector", 115) + "---\n" +
                            PluginYaml("token-verifier", 115) + "---\n" +
                            PluginChainYaml("curl", "token-injector-chain", "outbound-http", "token-injector",
                                  "{podSelector: {matchLabels: {app: curl}}, namespaceSelector: {matchExpressions: "
                                  "[{key: openservicemesh.io/monitored-by, operator: In, values: [osm]}]}}") +
                            "---\n" +
                            PluginChainYaml("httpbin", "token-verifier-chain", "inbound-http", "token-verifier",
                                  AppSelector("httpbin")));
  const auto curl = WholeTranslation(s, Agent(s, "curl", "curl-1"));
  EXPECT_EQ(Names(curl.snapshot.chains().outbound_http()),
            (Strings{"http-routing", "metrics", "tracing", "logging", "circuit-breaker", "token-injector",
                     "http-load-balancing", "http-default"}));
  EXPECT_EQ(curl.snapshot.chains().outbound_http(5).script(), "token-injector");
  EXPECT_EQ(Names(curl.snapshot.chains().inbound_http()).size(), 9u);  // no verifier for curl
  ASSERT_EQ(curl.snapshot.scripts_size(), 1);
  EXPECT_EQ(curl.snapshot.scripts(0).name(), "token-injector");
  EXPECT_EQ(curl.snapshot.scripts(0).plugin(), "token-injector");

  const auto httpbin = WholeTranslation(s, Agent(s, "httpbin", "httpbin-1"));
  EXPECT_EQ(Names(httpbin.snapshot.chains().inbound_http()),
            (Strings{"tls-termination", "http-routing", "metrics", "tracing", "logging", "throttle-service",
                     "throttle-route", "token-verifier", "http-load-balancing", "http-default"}));
  EXPECT_EQ(Names(httpbin.snapshot.chains().outbound_http()).size(), 7u);
}

TEST(Translate, TiesAreBrokenByName) {
  const MeshState s = State(std::string(kPluginsOn) + "---\n" + PluginYaml("zeta", 110) + "---\n" +
                            PluginYaml("alpha", 110) + "---\n" + PluginChainYaml("curl", "c", "outbound-http", "zeta, alpha"));
  const auto t = WholeTranslation(s, Agent(s, "curl", "curl-1"));
  EXPECT_EQ(Names(t.snapshot.chains().outbound_http()),
            (Strings{"http-routing", "metrics", "tracing", "logging", "circuit-breaker", "alpha",
                     "http-load-balancing", "zeta", "http-default"}));
}

// The agent settings a MeshConfig `spec` turns on, off without it.
TEST(Translate, AgentSettingsFollowMeshConfig) {
  const std::pair<const char*, bool (v1::AgentSettings::*)() const> cases[] = {
      {"{observability: {accessLog: true}}", &v1::AgentSettings::access_log},
      {"{traffic: {forwardClientCert: true}}", &v1::AgentSettings::forward_client_cert},
      {"{traffic: {egressPolicy: refuse}}", &v1::AgentSettings::egress_refused},
  };
  const MeshState off = State("");
  const v1::AgentSettings defaults = WholeTranslation(off, Agent(off, "curl", "curl-1")).snapshot.settings();
  for (const auto& [spec, setting] : cases) {
    EXPECT_FALSE((defaults.*setting)()) << spec;
    const MeshState on = State(std::string("apiVersion: config.openservicemesh.io/v1alpha2\nkind: MeshConfig\n"
                                           "metadata: {name: m}\nspec: ") + spec + "\n");
    EXPECT_TRUE((WholeTranslation(on, Agent(on, "curl", "curl-1")).snapshot.settings().*setting)()) << spec;
  }
}

TEST(Translate, MeshConfigDisablesAndReprioritisesBuiltins) {
  const MeshState s = State(R"(
apiVersion: config.openservicemesh.io/v1alpha2
kind: MeshConfig
metadata: {name: osm-mesh-config}
spec:
  pluginChains:
    outbound-http:
    - {plugin: logging, priority: 130, disable: true}
    - {plugin: tracing, priority: 155}
    - {plugin: circuit-breaker, disable: true}
    - {plugin: circuit-breaker, priority: 105}
    - {plugin: http-default, priority: 90}
    - {plugin: http-default, priority: 90, disable: true}
    - {plugin: no-such-module, disable: true}
)");
  // The last entry of a name wins.
  const auto t = WholeTranslation(s, Agent(s, "curl", "curl-1"));
  EXPECT_EQ(Names(t.snapshot.chains().outbound_http()),
            (Strings{"http-routing", "tracing", "metrics", "http-load-balancing", "circuit-breaker"}));
}

TEST(Translate, MissingPluginIsSkippedReportedAndMountedOnceCreated) {
  MeshState s = State(std::string(kPluginsOn) + "---\n" + PluginChainYaml("curl", "c", "outbound-http", "later"));
  auto t = WholeTranslation(s, Agent(s, "curl", "curl-1"));
  EXPECT_EQ(Names(t.snapshot.chains().outbound_http()).size(), 7u);
  EXPECT_EQ(t.report.missing_plugins.at({"curl", "c"}), (std::set<std::string>{"later"}));

  Add(s, PluginYaml("later", 115));
  t = WholeTranslation(s, Agent(s, "curl", "curl-1"));
  EXPECT_EQ(Names(t.snapshot.chains().outbound_http())[5], "later");
  EXPECT_TRUE(t.report.missing_plugins.empty());
}

struct SelectorCase {
  const char* selector;  // YAML of a LabelSelector
  bool expected;
};

class SelectorMatch : public ::testing::TestWithParam<SelectorCase> {};

TEST_P(SelectorMatch, FollowsKubernetesSemantics) {
  auto docs = resources::ParseManifest(
      "t", std::string("apiVersion: plugin.flomesh.io/v1alpha1\nkind: PluginChain\nmetadata: {name: c, namespace: n}\n"
                       "spec:\n  chains: [{name: inbound-http, plugins: [p]}]\n  selectors:\n    podSelector: ") +
               GetParam().selector + "\n");
  ASSERT_TRUE(docs.ok()) << docs.status();
  const auto& pc = static_cast<const mesh::v1::PluginChain&>(*(*docs)[0].object);
  mesh::v1::ObjectMeta meta;
  (*meta.mutable_labels())["app"] = "curl";
  (*meta.mutable_labels())["tier"] = "front";
  EXPECT_EQ(Matches(pc.spec().selectors().pod_selector(), meta.labels()), GetParam().expected) << GetParam().selector;
}

INSTANTIATE_TEST_SUITE_P(
    Selectors, SelectorMatch,
    ::testing::Values(SelectorCase{"{}", true}, SelectorCase{"{matchLabels: {app: curl}}", true},
                    SelectorCase{"{matchLabels: {app: curl, tier: back}}", false},
                    SelectorCase{"{matchExpressions: [{key: app, operator: In, values: [curl, x]}]}", true},
                    SelectorCase{"{matchExpressions: [{key: app, operator: In, values: [x]}]}", false},
                    SelectorCase{"{matchExpressions: [{key: app, operator: NotIn, values: [x]}]}", true},
                    SelectorCase{"{matchExpressions: [{key: app, operator: NotIn, values: [curl]}]}", false},
                    SelectorCase{"{matchExpressions: [{key: missing, operator: NotIn, values: [x]}]}", true},
                    SelectorCase{"{matchExpressions: [{key: tier, operator: Exists}]}", true},
                    SelectorCase{"{matchExpressions: [{key: zone, operator: Exists}]}", false},
                    SelectorCase{"{matchExpressions: [{key: zone, operator: DoesNotExist}]}", true},
                    SelectorCase{"{matchExpressions: [{key: app, operator: DoesNotExist}]}", false},
                    SelectorCase{"{matchLabels: {app: curl}, matchExpressions: [{key: tier, operator: In, values: [back]}]}",
                                 false}));

TEST(Translate, NamespaceSelectorUsesTheWorkloadsNamespaceLabels) {
  const std::string on = std::string(kPluginsOn) + "---\n" + PluginYaml("p", 115) + "---\n";
  const MeshState monitored = State(on + PluginChainYaml("httpbin", "c", "outbound-http", "p",
                                               "{namespaceSelector: {matchLabels: {openservicemesh.io/monitored-by: osm}}}"));
  EXPECT_EQ(WholeTranslation(monitored, Agent(monitored, "curl", "curl-1")).report.matched_chains.size(), 1u);
  const MeshState other = State(on + PluginChainYaml("httpbin", "c", "outbound-http", "p",
                                           "{namespaceSelector: {matchLabels: {team: x}}}"));
  EXPECT_TRUE(WholeTranslation(other, Agent(other, "curl", "curl-1")).report.matched_chains.empty());
}

TEST(Translate, PluginConfigsAttachPerDestinationServiceOnlyForAgentsMountingThePlugin) {
  MeshState s = State(std::string(kPluginsOn) + "---\n" + PluginYaml("token-injector", 115) + "---\n" +
                      PluginYaml("token-verifier", 115) + "---\n" +
                      PluginChainYaml("curl", "ci", "outbound-http", "token-injector", AppSelector("curl")) +
                      "---\n" +
                      PluginChainYaml("httpbin", "cv", "inbound-http", "token-verifier", AppSelector("httpbin")) +
                      "---\n" + Config("curl", "to-httpbin", "token-injector", "httpbin.httpbin", "{AccessToken: a}") +
                      "---\n" + Config("curl", "to-curl", "token-injector", "curl.curl", "{AccessToken: b}") + "---\n" +
                      Config("httpbin", "verify", "token-verifier", "httpbin.httpbin", "{Paths: [/get]}"));
  const auto curl = WholeTranslation(s, Agent(s, "curl", "curl-1"));
  // Two configs of one plugin for different services each keep their own.
  EXPECT_EQ(Svc(curl.snapshot, "httpbin.httpbin", false).plugin_configs().at("token-injector").fields().at("AccessToken").string_value(), "a");
  EXPECT_EQ(Svc(curl.snapshot, "curl.curl", false).plugin_configs().at("token-injector").fields().at("AccessToken").string_value(), "b");
  // The injector is on curl's outbound chain: not under curl's own (inbound) service.
  EXPECT_FALSE(Svc(curl.snapshot, "curl.curl", true).plugin_configs().contains("token-injector"));
  // Outbound for curl: the verifier is not mounted there, so its config is not attached.
  EXPECT_FALSE(Svc(curl.snapshot, "httpbin.httpbin", false).plugin_configs().contains("token-verifier"));
  EXPECT_EQ(curl.report.applied_configs.size(), 2u);

  const auto httpbin = WholeTranslation(s, Agent(s, "httpbin", "httpbin-1"));
  // Inbound, under the agent's own service.
  EXPECT_EQ(Svc(httpbin.snapshot, "httpbin.httpbin", true).plugin_configs().at("token-verifier").fields().at("Paths").list_value().values(0).string_value(), "/get");
  EXPECT_FALSE(Svc(httpbin.snapshot, "httpbin.httpbin", true).plugin_configs().contains("token-injector"));
}

TEST(Translate, ConflictingPluginConfigsTheOlderWinsAndBothAreReported) {
  const MeshState s = State(std::string(kPluginsOn) + "---\n" + PluginYaml("p", 115) + "---\n" +
                            PluginChainYaml("curl", "c", "outbound-http", "p") + "---\n" +
                            Config("curl", "first", "p", "httpbin.httpbin", "{v: 1}") + "---\n" +
                            Config("curl", "second", "p", "httpbin.httpbin", "{v: 2}"));
  const auto t = WholeTranslation(s, Agent(s, "curl", "curl-1"));
  EXPECT_EQ(Svc(t.snapshot, "httpbin.httpbin", false).plugin_configs().at("p").fields().at("v").number_value(), 1);
  ASSERT_EQ(t.report.conflicts.size(), 2u);
  EXPECT_NE(t.report.conflicts.at({"curl", "second"}).begin()->find("the older, curl/first, wins"), std::string::npos);
}

TEST(Translate, AServicesVirtualAddressNamesItToo) {
  const MeshState s = State("apiVersion: v1\nkind: Service\nmetadata: {name: echo, namespace: httpbin}\n"
                            "spec: {ports: [{port: 8080}], selector: {app: httpbin}, clusterIP: 10.96.0.9}\n");
  const auto t = WholeTranslation(s, Agent(s, "curl", "curl-1"));
  const auto& out = Svc(t.snapshot, "echo.httpbin", false);
  EXPECT_EQ(out.virtual_ip(), "10.96.0.9");
  for (const char* host : {"10.96.0.9", "10.96.0.9:8080", "echo.httpbin:8080"}) {
    EXPECT_NE(std::find(out.hosts().begin(), out.hosts().end(), host), out.hosts().end()) << host;
  }
}

TEST(Translate, ServicesRouteToWorkloadsAndOwnServicesToTheLocalApp) {
  const MeshState s = State("");
  const auto t = WholeTranslation(s, Agent(s, "curl", "curl-1"));
  const auto& out = Svc(t.snapshot, "httpbin.httpbin", false);
  EXPECT_NE(std::find(out.hosts().begin(), out.hosts().end(), "httpbin.httpbin:14001"), out.hosts().end());
  ASSERT_EQ(out.routes_size(), 1);
  EXPECT_EQ(out.routes(0).clusters(0).cluster(), "httpbin.httpbin|14001");
  const auto& in = Svc(t.snapshot, "curl.curl", true);
  EXPECT_EQ(in.routes(0).clusters(0).cluster(), "curl.curl|80|local");
  for (const auto& eps : t.snapshot.endpoints()) {
    if (eps.cluster() == "httpbin.httpbin|14001") {
      ASSERT_EQ(eps.endpoints_size(), 1);
      EXPECT_EQ(eps.endpoints(0).address(), "127.0.0.3");
      EXPECT_EQ(eps.endpoints(0).port(), 15003u);
    }
    if (eps.cluster() == "curl.curl|80|local") {
      EXPECT_EQ(eps.endpoints(0).address(), "127.0.0.1");
      EXPECT_EQ(eps.endpoints(0).port(), 80u);
    }
  }
  EXPECT_EQ(t.snapshot.settings().workload().service_account(), "curl");
}

// A Service selects the workloads of its namespace that carry every label of its selector,
// whichever label the index finds them by; its members and an agent's own services keep
// key order.
TEST(Translate, ServicesSelectTheWorkloadsWithEveryLabelOfTheirSelector) {
  const auto workload = [](const std::string& name, const std::string& ns, const std::string& labels) {
    return "apiVersion: meshplug.io/v1\nkind: Workload\nmetadata: {name: " + name + ", namespace: " + ns +
           ", labels: {" + labels + "}}\nspec: {address: 127.0.0.9, inboundPort: 15003}\n---\n";
  };
  const auto service = [](const std::string& name, const std::string& selector) {
    return "apiVersion: v1\nkind: Service\nmetadata: {name: " + name + ", namespace: httpbin}\nspec: {ports: [{port: 80}]" +
           (selector.empty() ? std::string() : ", selector: {" + selector + "}") + "}\n---\n";
  };
  const MeshState s = State(service("web", "app: shop, tier: web") + service("tier", "tier: web") +
                            service("none", "") + workload("w-b", "httpbin", "tier: web, app: shop") +
                            workload("w-a", "httpbin", "app: shop, tier: web, extra: x") +
                            workload("app-only", "httpbin", "app: shop") + workload("tier-only", "httpbin", "tier: web") +
                            workload("elsewhere", "curl", "app: shop, tier: web") +
                            "apiVersion: meshplug.io/v1\nkind: Workload\nmetadata: {name: unreachable, namespace: httpbin, "
                            "labels: {app: shop, tier: web}}\nspec: {}\n");
  const auto members = [&](const std::string& name) {
    Strings out;
    for (const auto* wl : s.Members({"httpbin", name})) out.push_back(wl->metadata().name());
    return out;
  };
  EXPECT_EQ(members("web"), (Strings{"w-a", "w-b"}));
  EXPECT_EQ(members("tier"), (Strings{"tier-only", "w-a", "w-b"}));
  EXPECT_EQ(members("none"), Strings{});  // an empty selector selects nothing
  EXPECT_EQ(members("httpbin"), Strings{"httpbin-1"});
  const auto selected = [&](const std::string& name) {
    Strings out;
    for (const auto* key : s.SelectedWorkloads({"httpbin", name})) out.push_back(key->second);
    return out;
  };
  EXPECT_EQ(selected("web"), (Strings{"unreachable", "w-a", "w-b"}));  // whose own service it is
  EXPECT_EQ(selected("none"), Strings{});
  const auto own = [&](const std::string& ns, const std::string& name) {
    Strings out;
    for (const auto* svc : s.ServicesSelecting(Agent(s, ns, name))) out.push_back(svc->first.second);
    return out;
  };
  EXPECT_EQ(own("httpbin", "w-b"), (Strings{"tier", "web"}));
  EXPECT_EQ(own("httpbin", "unreachable"), (Strings{"tier", "web"}));  // no address: still its own services
  EXPECT_EQ(own("httpbin", "app-only"), Strings{});
  EXPECT_EQ(own("curl", "elsewhere"), Strings{});  // other namespace
  const auto t = WholeTranslation(s, Agent(s, "httpbin", "w-a"));
  Strings inbound;
  for (const auto& svc : t.snapshot.services()) {
    if (svc.inbound()) inbound.push_back(svc.name());
  }
  EXPECT_EQ(inbound, (Strings{"tier.httpbin", "web.httpbin"}));
}

// What the controller counts on (ChangeImpact): another workload joining changes the
// destinations' endpoints, and nothing of an agent's own part.
TEST(Translate, AnotherWorkloadJoiningLeavesAnAgentsOwnPartAlone) {
  const std::string with_config = std::string(kPluginsOn) + "---\n" + PluginYaml("p", 1) + "---\n" +
                                  PluginChainYaml("curl", "c", "outbound-http", "p", AppSelector("curl")) + "---\n" +
                                  Config("curl", "cfg", "p", "httpbin.httpbin", "{a: 1}");
  MeshState s = State(with_config);
  const auto before = Translate(s, TranslateDestinations(s), Agent(s, "curl", "curl-1"));
  Add(s, "apiVersion: meshplug.io/v1\nkind: Workload\nmetadata: {name: httpbin-2, namespace: httpbin, labels: {app: httpbin}}\n"
         "spec: {address: 127.0.0.4, inboundPort: 15003}\n");
  const v1::Snapshot destinations = TranslateDestinations(s);
  size_t endpoints = 0;
  for (const auto& e : destinations.endpoints()) endpoints += e.cluster() == "httpbin.httpbin|14001" ? e.endpoints_size() : 0;
  ASSERT_EQ(endpoints, 2u);
  ASSERT_EQ(before.snapshot.services_size(), 2);  // its own, and httpbin's copy with the config
  EXPECT_EQ(before.report.copied_services, std::set<std::string>{"httpbin.httpbin"});
  const auto after = Translate(s, destinations, Agent(s, "curl", "curl-1"));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(after.snapshot, before.snapshot));
}

// The index of which Services select which workloads follows changes of either, and a
// copy of the state makes its own.
TEST(Translate, ServiceMembersFollowChangesAndCopies) {
  MeshState s = State("");
  ASSERT_EQ(s.Members({"httpbin", "httpbin"}).size(), 1u);
  Add(s, "apiVersion: meshplug.io/v1\nkind: Workload\nmetadata: {name: httpbin-1, namespace: httpbin, labels: {app: other}}\n"
         "spec: {address: 127.0.0.3, inboundPort: 15003}\n");
  EXPECT_TRUE(s.Members({"httpbin", "httpbin"}).empty());  // relabelled away
  Add(s, "apiVersion: v1\nkind: Service\nmetadata: {name: httpbin, namespace: httpbin}\nspec: {ports: [{port: 14001}], selector: {app: other}}\n");
  ASSERT_EQ(s.Members({"httpbin", "httpbin"}).size(), 1u);  // the Service follows it
  const MeshState copy = s;
  s.Remove(resources::Key{resources::Kind::kWorkload, "httpbin", "httpbin-1"});
  EXPECT_TRUE(s.Members({"httpbin", "httpbin"}).empty());
  ASSERT_EQ(copy.Members({"httpbin", "httpbin"}).size(), 1u);
  EXPECT_EQ(copy.Members({"httpbin", "httpbin"})[0], &copy.workloads.at({"httpbin", "httpbin-1"}));
}

// Destinations are translated once for all agents; an agent's own part holds only what
// differs: its inbound service and the destinations it has configs for.
TEST(Translate, AnAgentsOwnPartHoldsOnlyWhatDiffersFromTheSharedDestinations) {
  const MeshState s = State(std::string(kPluginsOn) + "---\n" + PluginYaml("p", 1) + "---\n" +
                            PluginChainYaml("curl", "c", "outbound-http", "p", AppSelector("curl")) +
                            "---\n" + Config("curl", "cfg", "p", "httpbin.httpbin", "{v: 1}"));
  const v1::Snapshot destinations = TranslateDestinations(s);
  std::vector<std::string> shared;
  for (const auto& svc : destinations.services()) shared.push_back(svc.name() + (svc.inbound() ? "|inbound" : ""));
  EXPECT_EQ(shared, (std::vector<std::string>{"curl.curl", "httpbin.httpbin"}));
  EXPECT_EQ(destinations.endpoints_size(), destinations.clusters_size());

  const auto t = Translate(s, destinations, Agent(s, "curl", "curl-1"));
  std::vector<std::string> own;
  for (const auto& svc : t.snapshot.services()) own.push_back(svc.name() + (svc.inbound() ? "|inbound" : ""));
  std::sort(own.begin(), own.end());
  EXPECT_EQ(own, (std::vector<std::string>{"curl.curl|inbound", "httpbin.httpbin"}));
  EXPECT_EQ(Svc(t.snapshot, "httpbin.httpbin", false).plugin_configs().at("p").fields().at("v").number_value(), 1);
  ASSERT_EQ(t.snapshot.clusters_size(), 1);
  EXPECT_EQ(t.snapshot.clusters(0).name(), "curl.curl|80|local");

  // An agent without the plugin gets the destinations as they are.
  const auto other = Translate(s, destinations, Agent(s, "httpbin", "httpbin-1"));
  ASSERT_EQ(other.snapshot.services_size(), 1);
  EXPECT_TRUE(other.snapshot.services(0).inbound());
}

// A Service's endpoints are split into pages of about 64, an endpoint's page chosen by a
// hash of its workload: every endpoint is in exactly one page, and a workload joining
// changes one page and leaves the others as they were.
TEST(Translate, ManyEndpointsArePagedAndAJoinChangesOnePage) {
  auto workload = [](int i) {
    return "---\napiVersion: meshplug.io/v1\nkind: Workload\nmetadata: {name: httpbin-w" + std::to_string(i) +
           ", namespace: httpbin, labels: {app: httpbin}}\nspec: {address: 10.1." + std::to_string(i / 250) + "." +
           std::to_string(i % 250 + 1) + ", inboundPort: 15003}\n";
  };
  std::string yaml;
  for (int i = 0; i < 200; ++i) yaml += workload(i);
  MeshState s = State(yaml.substr(4));
  // Resource name → bytes, of httpbin's cluster's pages.
  auto pages = [](const MeshState& state) {
    std::map<std::string, std::string> out;
    const v1::Snapshot destinations = TranslateDestinations(state);
    for (const auto& e : destinations.endpoints()) {
      if (e.cluster() == "httpbin.httpbin|14001") out[xds_types::ResourceName(e)] = e.SerializeAsString();
    }
    return out;
  };
  const auto before = pages(s);
  std::vector<std::string> names;
  std::set<std::string> workloads;
  size_t endpoints = 0;
  for (const auto& [name, bytes] : before) {
    names.push_back(name);
    v1::Endpoints e;
    ASSERT_TRUE(e.ParseFromString(bytes));
    EXPECT_LE(e.endpoints_size(), 96) << name;
    for (const auto& ep : e.endpoints()) workloads.insert(ep.workload()), ++endpoints;
  }
  // 201 endpoints (httpbin-1 and the 200): four pages.
  EXPECT_EQ(names, (Strings{"httpbin.httpbin|14001", "httpbin.httpbin|14001#1", "httpbin.httpbin|14001#2",
                            "httpbin.httpbin|14001#3"}));
  EXPECT_EQ(endpoints, 201u);
  EXPECT_EQ(workloads.size(), 201u);

  Add(s, workload(200).substr(4));
  const auto after = pages(s);
  ASSERT_EQ(after.size(), before.size());
  int changed = 0;
  for (const auto& [name, bytes] : after) changed += before.at(name) != bytes;
  EXPECT_EQ(changed, 1);
}

// The destination Services (with their clusters and endpoints) an agent receives.
std::vector<std::string> Destinations(const MeshState& s, const std::string& ns, const std::string& name) {
  const Translation t = WholeTranslation(s, Agent(s, ns, name));
  std::vector<std::string> out;
  for (const auto& svc : t.snapshot.services()) {
    if (!svc.inbound()) out.push_back(svc.name());
  }
  for (const auto& c : t.snapshot.clusters()) {
    if (c.name().find("|local") == std::string::npos) out.push_back("cluster " + c.name());
  }
  for (const auto& e : t.snapshot.endpoints()) {
    if (e.cluster().find("|local") == std::string::npos) out.push_back("endpoints " + e.cluster());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Egress hosts: an agent receives the Services its workload may call — MeshConfig's list
// for everyone, a Namespace's annotation over it — and every Service when nothing is said.
TEST(Translate, EgressHostsScopeTheDestinationsAnAgentReceives) {
  const std::string auth = R"(
apiVersion: v1
kind: Namespace
metadata: {name: auth}
---
apiVersion: v1
kind: Service
metadata: {name: ext-auth, namespace: auth}
spec: {ports: [{port: 8079}], selector: {app: ext-auth}}
)";
  using Names = std::vector<std::string>;
  const Names everything = {"cluster curl.curl|80", "cluster ext-auth.auth|8079", "cluster httpbin.httpbin|14001",
                            "curl.curl", "endpoints curl.curl|80", "endpoints ext-auth.auth|8079",
                            "endpoints httpbin.httpbin|14001", "ext-auth.auth", "httpbin.httpbin"};
  EXPECT_EQ(Destinations(State(auth), "curl", "curl-1"), everything);

  const std::string own_namespace_only = R"(---
apiVersion: config.openservicemesh.io/v1alpha2
kind: MeshConfig
metadata: {name: osm-mesh-config}
spec: {traffic: {egressHosts: ["./*"]}}
)";
  MeshState scoped = State(auth + own_namespace_only);
  EXPECT_EQ(Destinations(scoped, "curl", "curl-1"), (Names{"cluster curl.curl|80", "curl.curl", "endpoints curl.curl|80"}));
  EXPECT_EQ(Destinations(scoped, "httpbin", "httpbin-1"),
            (Names{"cluster httpbin.httpbin|14001", "endpoints httpbin.httpbin|14001", "httpbin.httpbin"}));

  // The curl namespace says more: its own, httpbin's httpbin, nothing of auth.
  Add(scoped, R"(
apiVersion: v1
kind: Namespace
metadata: {name: curl, annotations: {meshplug.io/egress-hosts: "./*, httpbin/httpbin"}}
)");
  EXPECT_EQ(Destinations(scoped, "curl", "curl-1"),
            (Names{"cluster curl.curl|80", "cluster httpbin.httpbin|14001", "curl.curl", "endpoints curl.curl|80",
                   "endpoints httpbin.httpbin|14001", "httpbin.httpbin"}));
  EXPECT_EQ(Destinations(scoped, "httpbin", "httpbin-1").size(), 3u);  // still MeshConfig's
  Add(scoped, R"(
apiVersion: v1
kind: Namespace
metadata: {name: httpbin, annotations: {meshplug.io/egress-hosts: "*/*"}}
)");
  EXPECT_EQ(Destinations(scoped, "httpbin", "httpbin-1"), everything);
  // A blank annotation: nothing to call.
  Add(scoped, R"(
apiVersion: v1
kind: Namespace
metadata: {name: httpbin, annotations: {meshplug.io/egress-hosts: ""}}
)");
  EXPECT_EQ(Destinations(scoped, "httpbin", "httpbin-1"), Names{});
}

// HTTPRoutes (Gateway API for a mesh) become the parent Service's routes, in front of
// its default route; their backends' clusters come along, in scope or not.
TEST(Translate, HTTPRoutesBecomeTheParentServicesRoutesBeforeItsDefault) {
  MeshState s = State(R"(
apiVersion: v1
kind: Service
metadata: {name: httpbin-v2, namespace: httpbin}
spec: {ports: [{port: 14001}], selector: {version: v2}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: split, namespace: httpbin}
spec:
  parentRefs: [{name: httpbin, port: 14001}]
  rules:
  - matches: [{path: {value: /api}, headers: [{name: x-canary, value: "yes"}], method: GET}]
    backendRefs: [{name: httpbin-v2, port: 14001}]
    timeouts: {request: 1500ms}
    retry: {attempts: 2, codes: [503], backoff: 50ms}
    fault: {delay: {fixedDelay: 250ms, percent: 30}, abort: {httpStatus: 503, percent: 5}}
  - matches: [{path: {type: PathPrefix, value: /v1/}}, {path: {type: Exact, value: /status}}]
    backendRefs: [{name: httpbin, port: 14001, weight: 80}, {name: httpbin-v2, port: 14001, weight: 20},
                  {name: missing, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: other-port, namespace: httpbin}
spec:
  parentRefs: [{name: httpbin, port: 9999}]
  rules: [{backendRefs: [{name: httpbin-v2, port: 14001}]}]
)");
  const auto t = WholeTranslation(s, Agent(s, "curl", "curl-1"));
  const auto& svc = Svc(t.snapshot, "httpbin.httpbin", false);
  ASSERT_EQ(svc.routes_size(), 4) << svc.DebugString();
  const v1::HttpRoute& canary = svc.routes(0);
  EXPECT_EQ(canary.name(), "split/0:14001");
  // PathPrefix matches whole path elements: /api and /api/x, not /apix.
  EXPECT_EQ(canary.match().regex(), R"(\/api(/.*)?)");
  EXPECT_EQ(canary.match().port(), 14001u);
  ASSERT_EQ(canary.match().headers_size(), 1);
  EXPECT_EQ(canary.match().headers(0).exact(), "yes");
  EXPECT_EQ(canary.match().methods(0), "GET");
  ASSERT_EQ(canary.clusters_size(), 1);
  EXPECT_EQ(canary.clusters(0).cluster(), "httpbin-v2.httpbin|14001");
  EXPECT_EQ(canary.timeout().seconds(), 1);
  EXPECT_EQ(canary.timeout().nanos(), 500'000'000);
  EXPECT_EQ(canary.retry().num_retries(), 2u);
  EXPECT_EQ(canary.retry().retry_on_status(0), 503u);
  EXPECT_EQ(canary.retry().backoff_base().nanos(), 50'000'000);
  EXPECT_EQ(canary.fault().delay().nanos(), 250'000'000);
  EXPECT_EQ(canary.fault().delay_percent(), 30u);
  EXPECT_EQ(canary.fault().abort_status(), 503u);
  EXPECT_EQ(canary.fault().abort_percent(), 5u);
  // One route per match; the backend that names no Service is left out.
  EXPECT_EQ(svc.routes(1).name(), "split/1/0:14001");
  EXPECT_EQ(svc.routes(1).match().prefix(), "/v1/");
  EXPECT_EQ(svc.routes(2).name(), "split/1/1:14001");
  EXPECT_EQ(svc.routes(2).match().exact(), "/status");
  ASSERT_EQ(svc.routes(2).clusters_size(), 2);
  EXPECT_EQ(svc.routes(2).clusters(0).weight(), 80u);
  EXPECT_EQ(svc.routes(2).clusters(1).cluster(), "httpbin-v2.httpbin|14001");
  EXPECT_EQ(svc.routes(2).clusters(1).weight(), 20u);
  EXPECT_FALSE(svc.routes(2).has_retry());
  EXPECT_FALSE(svc.routes(2).has_fault());
  EXPECT_EQ(svc.routes(3).name(), "port-14001");

  // curl may call httpbin only: the backend's cluster comes with it, its Service does not.
  Add(s, R"(
apiVersion: v1
kind: Namespace
metadata: {name: curl, annotations: {meshplug.io/egress-hosts: "httpbin/httpbin"}}
)");
  EXPECT_EQ(Destinations(s, "curl", "curl-1"),
            (std::vector<std::string>{"cluster httpbin-v2.httpbin|14001", "cluster httpbin.httpbin|14001",
                                      "endpoints httpbin-v2.httpbin|14001", "endpoints httpbin.httpbin|14001",
                                      "httpbin.httpbin"}));
}

// A parentRef without a port is each port's: route names stay unique per Service (agents
// refuse a snapshot with two routes of one name). A rule none of whose backends exists is
// left out.
TEST(Translate, HTTPRoutesOnEveryPortKeepRouteNamesUnique) {
  const MeshState s = State(R"(
apiVersion: v1
kind: Service
metadata: {name: multi, namespace: httpbin}
spec: {ports: [{port: 80}, {port: 8080, protocol: grpc}, {port: 5432, protocol: tcp}], selector: {app: httpbin}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: both, namespace: httpbin}
spec:
  parentRefs: [{name: multi}]
  rules:
  - matches: [{headers: [{name: x-gone, value: "1"}]}]
    backendRefs: [{name: nowhere, port: 80}, {name: multi, port: 80, weight: 0}]
  - backendRefs: [{name: multi, port: 80}]
)");
  const auto t = WholeTranslation(s, Agent(s, "curl", "curl-1"));
  std::vector<std::string> names;
  for (const auto& r : Svc(t.snapshot, "multi.httpbin", false).routes()) names.push_back(r.name());
  EXPECT_EQ(names, (std::vector<std::string>{"both/1:80", "port-80", "both/1:8080", "port-8080"}));
}

TEST(Translate, SameInputSameVersion) {
  const MeshState s = State(std::string(kPluginsOn) + "---\n" + PluginYaml("p", 1) + "---\n" + PluginChainYaml("curl", "c", "outbound-http", "p"));
  const auto a = WholeTranslation(s, Agent(s, "curl", "curl-1"));
  const auto b = WholeTranslation(s, Agent(s, "curl", "curl-1"));
  EXPECT_EQ(a.snapshot.version(), b.snapshot.version());
  EXPECT_NE(a.snapshot.version(), WholeTranslation(s, Agent(s, "httpbin", "httpbin-1")).snapshot.version());
}

}  // namespace
}  // namespace meshplug::control_plane::translate
