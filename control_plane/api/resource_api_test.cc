// Every validation rule of an apply, all-or-nothing applies, stale resourceVersions and
// deletes, through ResourceApi on a real SQLite store.
#include "control_plane/api/resource_api.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "control_plane/store/sqlite_store.h"
#include "control_plane/testing/mesh_fixtures.h"
#include "control_plane/testing/fresh_store.h"

namespace meshplug::control_plane::api {
namespace {

constexpr const char* kMeshConfigPluginsOn = control_plane::testing::kPluginPolicyOn;

constexpr const char* kNamespaces = R"(
apiVersion: v1
kind: Namespace
metadata: {name: curl, labels: {openservicemesh.io/monitored-by: osm}}
---
apiVersion: v1
kind: Namespace
metadata: {name: httpbin, labels: {openservicemesh.io/monitored-by: osm}}
)";

class ResourceApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::replace(name.begin(), name.end(), '/', '_');
    path_ = testing::FreshStorePath(name);
    store_ = std::move(*store::SqliteStore::Open(path_));
    api_ = std::make_unique<ResourceApi>(*store_);
  }

  absl::StatusOr<v1::ApplyResponse> Apply(const std::string& content,
                                          const std::string& source = "test.yaml") {
    v1::ApplyRequest req;
    auto* m = req.add_manifests();
    m->set_source(source);
    m->set_content(content);
    return api_->Apply(req);
  }

  void ApplyOk(const std::string& content) {
    auto r = Apply(content);
    ASSERT_TRUE(r.ok()) << r.status();
  }

  // Applies `content` with plugins enabled and namespaces present; returns the error.
  std::string ApplyError(const std::string& content) {
    ApplyOk(std::string(kMeshConfigPluginsOn) + "---\n" + kNamespaces);
    auto r = Apply(content);
    EXPECT_FALSE(r.ok()) << "accepted:\n" << content;
    return std::string(r.status().message());
  }

  std::string path_;
  std::unique_ptr<store::SqliteStore> store_;
  std::unique_ptr<ResourceApi> api_;
};

std::string RouteDoc(const std::string& spec) {
  return "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: r\n  namespace: curl\nspec:\n" + spec;
}

std::string PluginDoc(const std::string& spec) {
  return "apiVersion: plugin.flomesh.io/v1alpha1\nkind: Plugin\nmetadata:\n  name: p1\nspec:\n" + spec;
}

std::string ChainDoc(const std::string& spec) {
  return "apiVersion: plugin.flomesh.io/v1alpha1\nkind: PluginChain\nmetadata:\n  name: c1\n"
         "  namespace: curl\nspec:\n" + spec;
}

std::string ConfigDoc(const std::string& spec) {
  return "apiVersion: plugin.flomesh.io/v1alpha1\nkind: PluginConfig\nmetadata:\n  name: cfg1\n"
         "  namespace: curl\nspec:\n" + spec;
}

const std::string kScript = "  script: |\n    function on_request(req, ctx) end\n";

struct BadCase {
  const char* name;
  std::string manifest;
  const char* expected;  // substring of the error
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

class BadInput : public ResourceApiTest, public ::testing::WithParamInterface<BadCase> {};

TEST_P(BadInput, IsRejectedWithFieldAndReason) {
  const auto& c = GetParam();
  const std::string err = ApplyError(c.manifest);
  EXPECT_NE(err.find(c.expected), std::string::npos) << "error was: " << err;
  EXPECT_NE(err.find("test.yaml: document 1"), std::string::npos) << "error was: " << err;
  // Nothing of a rejected apply is stored.
  EXPECT_TRUE(store_->List(resources::Kind::kPlugin, "")->empty());
  EXPECT_TRUE(store_->List(resources::Kind::kPluginChain, "")->empty());
}

INSTANTIATE_TEST_SUITE_P(
    Validation, BadInput,
    ::testing::Values(
        BadCase{"UnknownKind", "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n",
                "kind (line 2): unknown kind \"Pod\""},
        BadCase{"UnknownApiVersion",
                "apiVersion: plugin.flomesh.io/v2\nkind: Plugin\nmetadata: {name: x}\n",
                "apiVersion (line 1): \"plugin.flomesh.io/v2\" is not an apiVersion of Plugin"},
        BadCase{"MissingName", PluginDoc(kScript).replace(PluginDoc("").find("  name: p1\n"), 11, "  labels: {a: b}\n"),
                "metadata.name: required"},
        BadCase{"NamespaceOnClusterKind",
                "apiVersion: plugin.flomesh.io/v1alpha1\nkind: Plugin\nmetadata: {name: p1, namespace: curl}\nspec:\n" + kScript,
                "metadata.namespace: must be empty: Plugin is cluster-scoped"},
        BadCase{"ScriptThatLoopsAtTopLevel", PluginDoc("  script: 'while true do end'\n"),
                "spec.script: does not load: plugin p1: p1:1: instruction limit of 1000000 exceeded"},
        BadCase{"ScriptThatFailsAtTopLevel", PluginDoc("  script: 'error(\"needs config\")'\n"),
                "spec.script: does not load: plugin p1: p1:1: needs config"},
        BadCase{"PhaseThatIsNotAFunction", PluginDoc("  script: 'on_request = 1'\n"),
                "spec.script: does not load: plugin p1: on_request must be a function, not a number"},
        BadCase{"ServiceNameWithADot",
                "apiVersion: v1\nkind: Service\nmetadata: {name: httpbin.httpbin, namespace: curl}\n"
                "spec: {ports: [{port: 80}]}\n",
                "metadata.name: \"httpbin.httpbin\" is not a Service name"},
        BadCase{"BareScalarDocument", "just a string\n",
                "document 1: a resource must be an object with apiVersion, kind, metadata; got a bare value"},
        BadCase{"AliasBomb",
                "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n",
                "document 1: more than 100000 YAML nodes (an alias counts as a copy of what it names)"},
        // Found by fuzz/manifest: stored, the value would not load back.
        BadCase{"ValueThatIsNotUtf8",
                "apiVersion: v1\nkind: Namespace\nmetadata: {name: a, labels: {team: \"caf\xE9\"}}\n",
                "document 1 (line 3): a value that is not UTF-8 text"},
        // Found by fuzz/manifest: one key decided the kind, the other was stored.
        BadCase{"DuplicateKey", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\nkind: Service\n",
                "document 1 (line 4): the key \"kind\" appears twice"},
        BadCase{"DeepNesting", std::string(100, '[') + std::string(100, ']') + "\n",
                "nested deeper than 64 levels"},
        BadCase{"MissingNamespace",
                "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}]}\n",
                "metadata.namespace: required: Service is namespaced"},
        BadCase{"PriorityTooHigh", PluginDoc("  priority: 70000\n" + kScript),
                "spec.priority: 70000 is outside 0-65535"},
        BadCase{"PriorityNegative", PluginDoc("  priority: -1\n" + kScript),
                "spec.priority: -1 is outside 0-65535"},
        BadCase{"PriorityNotInteger", PluginDoc("  priority: 115.5\n" + kScript),
                "spec.priority (line 6): must be an integer, got \"115.5\""},
        BadCase{"PriorityQuoted", PluginDoc("  priority: \"115\"\n" + kScript),
                "spec.priority (line 6): must be an integer"},
        BadCase{"LuaSyntaxError", PluginDoc("  script: |\n    function on_request(req\n      retrun 1\n    end\n"),
                "spec.script: Lua syntax error: p1:2:"},
        BadCase{"PipyScript", PluginDoc("  pipyscript: \"pipy()\"\n"),
                "spec.pipyscript (line 6): PipyJS is not supported; write the plugin in Lua 5.4 and put it in spec.script"},
        BadCase{"UnknownField", PluginDoc("  priorty: 5\n" + kScript),
                "spec.priorty (line 6): unknown field"},
        BadCase{"UnknownTopLevelField",
                "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\nspec: {}\n",
                "spec (line 4): unknown field"},
        BadCase{"ScriptMissing", PluginDoc("  priority: 1\n"), "spec.script: required"},
        BadCase{"ChainNameUnknown", ChainDoc("  chains:\n  - name: inbound-udp\n    plugins: [p1]\n"),
                "spec.chains[0].name: \"inbound-udp\" is not one of inbound-tcp, inbound-http, outbound-tcp, outbound-http"},
        BadCase{"SelectorOperatorUnknown",
                ChainDoc("  chains: [{name: inbound-http, plugins: [p1]}]\n  selectors:\n    podSelector:\n"
                         "      matchExpressions: [{key: app, operator: Equals, values: [a]}]\n"),
                "spec.selectors.podSelector.matchExpressions[0].operator: \"Equals\" is not one of In, NotIn, Exists, DoesNotExist"},
        BadCase{"ValuesGivenForExists",
                ChainDoc("  chains: [{name: inbound-http, plugins: [p1]}]\n  selectors:\n    namespaceSelector:\n"
                         "      matchExpressions: [{key: app, operator: Exists, values: [a]}]\n"),
                "spec.selectors.namespaceSelector.matchExpressions[0].values: must be empty for operator Exists"},
        BadCase{"ValuesGivenForDoesNotExist",
                ChainDoc("  chains: [{name: inbound-http, plugins: [p1]}]\n  selectors:\n    podSelector:\n"
                         "      matchExpressions: [{key: app, operator: DoesNotExist, values: [a]}]\n"),
                "values: must be empty for operator DoesNotExist"},
        BadCase{"ValuesMissingForIn",
                ChainDoc("  chains: [{name: inbound-http, plugins: [p1]}]\n  selectors:\n    podSelector:\n"
                         "      matchExpressions: [{key: app, operator: In}]\n"),
                "matchExpressions[0].values: required for operator In"},
        BadCase{"ValuesMissingForNotIn",
                ChainDoc("  chains: [{name: inbound-http, plugins: [p1]}]\n  selectors:\n    podSelector:\n"
                         "      matchExpressions: [{key: app, operator: NotIn, values: []}]\n"),
                "matchExpressions[0].values: required for operator NotIn"},
        BadCase{"DestinationKindNotService",
                ConfigDoc("  plugin: p1\n  destinationRefs: [{kind: Deployment, name: httpbin, namespace: httpbin}]\n  config: {}\n"),
                "spec.destinationRefs[0].kind: \"Deployment\" is not supported; only Service"},
        BadCase{"ConfigNotObject",
                ConfigDoc("  plugin: p1\n  destinationRefs: [{kind: Service, name: httpbin, namespace: httpbin}]\n  config: [1, 2]\n"),
                "spec.config (line 9): must be an object, got a list"},
        BadCase{"ConfigScalar",
                ConfigDoc("  plugin: p1\n  destinationRefs: [{kind: Service, name: httpbin, namespace: httpbin}]\n  config: hello\n"),
                "spec.config (line 9): must be an object, got \"hello\""},
        BadCase{"NamespaceMissingInStore",
                "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: nowhere}\nspec: {ports: [{port: 80}]}\n",
                "namespace \"nowhere\" does not exist"},
        BadCase{"ServicePortOutOfRange",
                "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: curl}\nspec: {ports: [{port: 0}]}\n",
                "spec.ports[0].port: 0 is outside 1-65535"},
        BadCase{"ServiceProtocol",
                "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: curl}\nspec: {ports: [{port: 80, protocol: udp}]}\n",
                "spec.ports[0].protocol: \"udp\" is not http, http2, grpc or tcp"},
        BadCase{"BadName", PluginDoc(kScript).replace(PluginDoc("").find("p1"), 2, "Token_Verifier"),
                "metadata.name: \"Token_Verifier\" must be lower-case"},
        BadCase{"WorkloadAddress",
                "apiVersion: meshplug.io/v1\nkind: Workload\nmetadata: {name: w, namespace: curl}\nspec: {address: not-an-ip}\n",
                "spec.address: \"not-an-ip\" is not an IP address"},
        BadCase{"NotAnObject", "- a\n- b\n", "a resource must be an object"},
        BadCase{"RouteWithoutParent", RouteDoc("  rules: [{backendRefs: [{name: b, port: 80}]}]\n"),
                "spec.parentRefs: at least one Service is required"},
        BadCase{"RouteParentNotAService",
                RouteDoc("  parentRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]\n"
                         "  rules: [{backendRefs: [{name: b, port: 80}]}]\n"),
                "spec.parentRefs[0].group: \"gateway.networking.k8s.io\" is not \"\" (core)"},
        BadCase{"RouteBackendWithoutPort", RouteDoc("  parentRefs: [{name: a}]\n  rules: [{backendRefs: [{name: b}]}]\n"),
                "spec.rules[0].backendRefs[0].port: required"},
        BadCase{"RouteWeightTooHigh",
                RouteDoc("  parentRefs: [{name: a}]\n  rules: [{backendRefs: [{name: b, port: 80, weight: 1000001}]}]\n"),
                "spec.rules[0].backendRefs[0].weight: 1000001 is outside 0-1000000"},
        BadCase{"RouteEveryWeightZero",
                RouteDoc("  parentRefs: [{name: a}]\n  rules: [{backendRefs: [{name: b, port: 80, weight: 0}]}]\n"),
                "spec.rules[0].backendRefs: every weight is 0: no call could go anywhere"},
        BadCase{"RoutePathRegexNotRe2",
                RouteDoc("  parentRefs: [{name: a}]\n  rules:\n  - matches: [{path: {type: RegularExpression, value: \"/(?=x)\"}}]\n"
                         "    backendRefs: [{name: b, port: 80}]\n"),
                "spec.rules[0].matches[0].path.value: \"/(?=x)\" is not an RE2 regular expression: invalid perl operator: (?="},
        BadCase{"RoutePathNotAbsolute",
                RouteDoc("  parentRefs: [{name: a}]\n  rules:\n  - matches: [{path: {value: api}}]\n    backendRefs: [{name: b, port: 80}]\n"),
                "spec.rules[0].matches[0].path.value: \"api\" does not start with /"},
        BadCase{"RouteHeaderName",
                RouteDoc("  parentRefs: [{name: a}]\n  rules:\n  - matches: [{headers: [{name: \"x y\", value: v}]}]\n"
                         "    backendRefs: [{name: b, port: 80}]\n"),
                "spec.rules[0].matches[0].headers[0].name: \"x y\" is not an HTTP header name"},
        BadCase{"RouteMethod",
                RouteDoc("  parentRefs: [{name: a}]\n  rules:\n  - matches: [{method: get}]\n    backendRefs: [{name: b, port: 80}]\n"),
                "spec.rules[0].matches[0].method: \"get\" is not an HTTP method"},
        BadCase{"RouteTimeout",
                RouteDoc("  parentRefs: [{name: a}]\n  rules: [{backendRefs: [{name: b, port: 80}], timeouts: {request: 2 days}}]\n"),
                "spec.rules[0].timeouts.request: \"2 days\" is not a duration from 1ms to 24h"},
        BadCase{"RouteRetries",
                RouteDoc("  parentRefs: [{name: a}]\n  rules: [{backendRefs: [{name: b, port: 80}], retry: {attempts: 11}}]\n"),
                "spec.rules[0].retry.attempts: 11 is outside 0-10"},
        BadCase{"RouteRetryCode",
                RouteDoc("  parentRefs: [{name: a}]\n  rules: [{backendRefs: [{name: b, port: 80}], retry: {codes: [200]}}]\n"),
                "spec.rules[0].retry.codes: 200 is not a status from 400 to 599"},
        BadCase{"RouteFaultPercent",
                RouteDoc("  parentRefs: [{name: a}]\n  rules: [{backendRefs: [{name: b, port: 80}], fault: {abort: {httpStatus: 503, percent: 101}}}]\n"),
                "spec.rules[0].fault.abort.percent: 101 is outside 0-100"},
        BadCase{"RouteFaultStatus",
                RouteDoc("  parentRefs: [{name: a}]\n  rules: [{backendRefs: [{name: b, port: 80}], fault: {abort: {httpStatus: 99, percent: 1}}}]\n"),
                "spec.rules[0].fault.abort.httpStatus: 99 is not an error status from 400 to 599 (but 413 and 504)"},
        BadCase{"RouteFaultDelay",
                RouteDoc("  parentRefs: [{name: a}]\n  rules: [{backendRefs: [{name: b, port: 80}], fault: {delay: {fixedDelay: soon, percent: 1}}}]\n"),
                "spec.rules[0].fault.delay.fixedDelay: \"soon\" is not a duration from 1ms to 1h"},
        BadCase{"RouteFaultPercentMissing",
                RouteDoc("  parentRefs: [{name: a}]\n  rules: [{backendRefs: [{name: b, port: 80}], fault: {abort: {httpStatus: 503}}}]\n"),
                "spec.rules[0].fault.abort.percent: required: the share of calls, 0-100"},
        BadCase{"RouteFaultEmpty",
                RouteDoc("  parentRefs: [{name: a}]\n  rules: [{backendRefs: [{name: b, port: 80}], fault: {}}]\n"),
                "spec.rules[0].fault: neither delay nor abort"},
        BadCase{"RouteParentNamespace",
                RouteDoc("  parentRefs: [{name: a, namespace: other}]\n  rules: [{backendRefs: [{name: b, port: 80}]}]\n"),
                "spec.parentRefs[0].namespace (line 7): unknown field"},
        BadCase{"KindMissing", "apiVersion: v1\nmetadata: {name: x}\n", "kind: required"}),
    [](const ::testing::TestParamInfo<BadCase>& info) { return info.param.name; });

TEST_F(ResourceApiTest, PluginKindsAreRefusedWhilePluginPolicyIsDisabled) {
  auto r = Apply(PluginDoc(kScript));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message())
                .find("test.yaml: document 1 (Plugin p1): kind: plugin policy is disabled"),
            std::string::npos)
      << r.status();
  // Enabling it in the same apply is enough.
  auto ok = Apply(std::string(kMeshConfigPluginsOn) + "---\n" + PluginDoc(kScript));
  EXPECT_TRUE(ok.ok()) << ok.status();
}

TEST_F(ResourceApiTest, YamlSyntaxErrorNamesSourceAndLine) {
  auto r = Apply("kind: Plugin\nmetadata: {name: [\n", "bad.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("bad.yaml: line "), std::string::npos) << r.status();
}

// Found by fuzz/manifest: yaml-cpp 0.7 loops forever on a ',' where a block node may
// start, filling memory; the apply is refused at once instead.
TEST_F(ResourceApiTest, TextTheYamlParserWouldLoopOnIsRefused) {
  for (const auto& [text, where] : std::vector<std::pair<std::string, std::string>>{
           {",\n", "line 1, column 1"},
           {"- a\n,\n", "line 2, column 1"},
           {"apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n, x\n", "line 5, column 1"},
           {"&a ,\n", "line 1"}}) {
    auto r = Apply(text, "bad.yaml");
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_NE(std::string(r.status().message()).find("bad.yaml: " + where), std::string::npos) << r.status();
    EXPECT_NE(std::string(r.status().message()).find("not valid YAML or JSON"), std::string::npos) << r.status();
  }
  EXPECT_TRUE(store_->List(resources::Kind::kNamespace, "")->empty());
}

TEST_F(ResourceApiTest, OneBadDocumentRejectsTheWholeApply) {
  ApplyOk(kMeshConfigPluginsOn);
  auto r = Apply(std::string(kNamespaces) + "---\n" + PluginDoc("  priority: 99999\n" + kScript));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("test.yaml: document 3 (Plugin p1): spec.priority"),
            std::string::npos)
      << r.status();
  EXPECT_TRUE(store_->List(resources::Kind::kNamespace, "")->empty());
  EXPECT_EQ(store_->Revision(), 1);
}

TEST_F(ResourceApiTest, DuplicateDocumentsAreRejected) {
  auto r = Apply(std::string(kNamespaces) + "---\n" + kNamespaces);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("is also defined by test.yaml: document 1"),
            std::string::npos)
      << r.status();
}

TEST_F(ResourceApiTest, ReapplyIsUnchangedAndChangeIsConfigured) {
  ApplyOk(kMeshConfigPluginsOn);
  auto first = Apply(PluginDoc("  priority: 115\n" + kScript));
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->results(0).action(), "created");
  const int64_t rv = first->results(0).resource_version();

  auto again = Apply(PluginDoc("  priority: 115\n" + kScript));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->results(0).action(), "unchanged");
  EXPECT_EQ(again->results(0).resource_version(), rv);
  EXPECT_EQ(store_->Revision(), rv);

  auto changed = Apply(PluginDoc("  priority: 116\n" + kScript));
  ASSERT_TRUE(changed.ok());
  EXPECT_EQ(changed->results(0).action(), "configured");
  EXPECT_GT(changed->results(0).resource_version(), rv);

  v1::GetRequest get;
  get.set_kind("pi");
  get.set_name("p1");
  auto got = api_->Get(get);
  ASSERT_TRUE(got.ok()) << got.status();
  mesh::v1::Plugin plugin;
  ASSERT_TRUE(got->objects(0).UnpackTo(&plugin));
  EXPECT_EQ(plugin.spec().priority(), 116);
  EXPECT_EQ(plugin.metadata().generation(), 2);
  EXPECT_EQ(plugin.metadata().resource_version(), changed->results(0).resource_version());
  EXPECT_FALSE(plugin.metadata().creation_timestamp().empty());
  EXPECT_EQ(plugin.status().compile(), "ok");
}

TEST_F(ResourceApiTest, StaleResourceVersionIsRefused) {
  ApplyOk(kMeshConfigPluginsOn);
  auto first = Apply(PluginDoc("  priority: 1\n" + kScript));
  ASSERT_TRUE(first.ok());
  const int64_t rv = first->results(0).resource_version();
  ApplyOk(PluginDoc("  priority: 2\n" + kScript));

  // Quoted, as `meshctl get -o yaml` prints it.
  const std::string stale = "apiVersion: plugin.flomesh.io/v1alpha1\nkind: Plugin\nmetadata:\n  name: p1\n"
                            "  resourceVersion: \"" + std::to_string(rv) + "\"\nspec:\n  priority: 3\n" + kScript;
  auto r = Apply(stale);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(r.status().message()).find("was changed"), std::string::npos) << r.status();
}

TEST_F(ResourceApiTest, DeletingANamespaceDeletesWhatIsInIt) {
  ApplyOk(std::string(kMeshConfigPluginsOn) + "---\n" + kNamespaces);
  ApplyOk("apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: curl}\nspec: {ports: [{port: 80}]}\n");
  v1::DeleteRequest del;
  auto* ref = del.add_refs();
  ref->set_kind("ns");
  ref->set_name("curl");
  auto r = api_->Delete(del);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->results_size(), 2);
  EXPECT_TRUE(store_->List(resources::Kind::kService, "")->empty());

  auto missing = api_->Delete(del);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(std::string(missing.status().message()), "Namespace curl not found");
}

TEST_F(ResourceApiTest, GetUnknownKindNamesTheKnownOnes) {
  v1::GetRequest get;
  get.set_kind("pods");
  auto r = api_->Get(get);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("unknown kind \"pods\" (known: Namespace"),
            std::string::npos);
}

std::string ServiceDoc(const std::string& name, const std::string& cluster_ip = "") {
  return "apiVersion: v1\nkind: Service\nmetadata: {name: " + name + ", namespace: httpbin}\n"
         "spec: {ports: [{port: 14001}], selector: {app: " + name + "}" +
         (cluster_ip.empty() ? "" : ", clusterIP: " + cluster_ip) + "}\n";
}

class ServiceAddressTest : public ResourceApiTest {
 protected:
  std::string AddressOf(const std::string& name) {
    v1::GetRequest get;
    get.set_kind("Service");
    get.set_namespace_("httpbin");
    get.set_name(name);
    auto got = api_->Get(get);
    if (!got.ok() || got->objects_size() != 1) return "<none>";
    mesh::v1::Service svc;
    got->objects(0).UnpackTo(&svc);
    return svc.spec().cluster_ip();
  }

  void DeleteService(const std::string& name) {
    v1::DeleteRequest del;
    auto* ref = del.add_refs();
    ref->set_kind("Service");
    ref->set_namespace_("httpbin");
    ref->set_name(name);
    ASSERT_TRUE(api_->Delete(del).ok());
  }
};

TEST_F(ServiceAddressTest, EachServiceGetsTheNextFreeAddressAndKeepsIt) {
  ApplyOk(kNamespaces);
  ApplyOk(ServiceDoc("a") + "---\n" + ServiceDoc("b"));
  EXPECT_EQ(AddressOf("a"), "10.96.0.1");
  EXPECT_EQ(AddressOf("b"), "10.96.0.2");
  // Applying the same manifests again changes nothing.
  auto again = Apply(ServiceDoc("a") + "---\n" + ServiceDoc("b"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->results(0).action(), "unchanged");
  EXPECT_EQ(AddressOf("a"), "10.96.0.1");
  // A deleted Service's address is not handed out again at once (clients may have it
  // cached); the next one is.
  DeleteService("a");
  ApplyOk(ServiceDoc("c"));
  EXPECT_EQ(AddressOf("c"), "10.96.0.3");
  EXPECT_EQ(AddressOf("b"), "10.96.0.2");
}

TEST_F(ServiceAddressTest, AGivenAddressMustBeFreeInTheRangeAndNeverChanges) {
  ApplyOk(kNamespaces);
  ApplyOk(ServiceDoc("a", "10.96.7.7"));
  EXPECT_EQ(AddressOf("a"), "10.96.7.7");
  auto taken = Apply(ServiceDoc("b", "10.96.7.7"));
  ASSERT_FALSE(taken.ok());
  EXPECT_EQ(std::string(taken.status().message()),
            "test.yaml: document 1 (Service b): spec.clusterIP: 10.96.7.7 is taken by Service httpbin/a");
  auto outside = Apply(ServiceDoc("b", "192.168.0.1"));
  ASSERT_FALSE(outside.ok());
  EXPECT_EQ(std::string(outside.status().message()), "test.yaml: document 1 (Service b): spec.clusterIP: \"192.168.0.1\" is "
                                        "not a host address of --service_cidr 10.96.0.0/16");
  EXPECT_FALSE(Apply(ServiceDoc("b", "10.96.0.0")).ok());  // the network's own address
  EXPECT_FALSE(Apply(ServiceDoc("b", "banana")).ok());
  auto moved = Apply(ServiceDoc("a", "10.96.7.8"));
  ASSERT_FALSE(moved.ok());
  EXPECT_NE(moved.status().message().find("cannot replace \"10.96.7.7\""), std::string::npos) << moved.status();
  EXPECT_EQ(AddressOf("b"), "<none>");  // nothing of the refused applies was stored
}

TEST_F(ServiceAddressTest, ARangeThatIsFullSaysSoAndBadRangesAreRefused) {
  api_ = std::make_unique<ResourceApi>(*store_, nullptr, *ServiceAddresses::Parse("10.0.0.0/29"));  // 6 hosts
  ApplyOk(kNamespaces);
  ApplyOk(ServiceDoc("a") + "---\n" + ServiceDoc("b") + "---\n" + ServiceDoc("c") + "---\n" + ServiceDoc("d") + "---\n" +
          ServiceDoc("e"));
  DeleteService("b");
  ApplyOk(ServiceDoc("f"));  // the last free one, .6
  EXPECT_EQ(AddressOf("f"), "10.0.0.6");
  ApplyOk(ServiceDoc("g"));  // round again: b's .2
  EXPECT_EQ(AddressOf("g"), "10.0.0.2");
  auto full = Apply(ServiceDoc("h"));
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.status().message(),
            "test.yaml: document 1 (Service h): spec.clusterIP: no free address left in --service_cidr 10.0.0.0/29");
  EXPECT_FALSE(ServiceAddresses::Parse("127.0.0.0/8").ok());
  EXPECT_FALSE(ServiceAddresses::Parse("169.254.0.0/16").ok());
  EXPECT_EQ(ServiceAddresses::Parse("10.0.0.1/24").status().message(),
            "--service_cidr: \"10.0.0.1/24\" has host bits set; the network is 10.0.0.0/24");
  EXPECT_FALSE(ServiceAddresses::Parse("10.0.0.0/31").ok());
  EXPECT_FALSE(ServiceAddresses::Parse("fd00::/64").ok());
  EXPECT_FALSE(ServiceAddresses::Parse("10.0.0.0").ok());
}

TEST_F(ResourceApiTest, MeshConfigTrafficSettingsAreCheckedByName) {
  const std::string mc = "apiVersion: config.openservicemesh.io/v1alpha2\nkind: MeshConfig\nmetadata: {name: m}\n";
  auto egress = Apply(mc + "spec: {traffic: {egressPolicy: allow}}\n");
  ASSERT_FALSE(egress.ok());
  EXPECT_NE(egress.status().message().find("spec.traffic.egressPolicy: \"allow\" is not passthrough or refuse"),
            std::string::npos)
      << egress.status();
  auto mtls = Apply(mc + "spec: {traffic: {mtlsMode: maybe}}\n");
  ASSERT_FALSE(mtls.ok());
  EXPECT_NE(mtls.status().message().find("spec.traffic.mtlsMode: \"maybe\" is not strict or permissive"), std::string::npos);
  ApplyOk(mc + "spec: {traffic: {egressPolicy: refuse, mtlsMode: strict, forwardClientCert: true}}\n");
}

TEST_F(ResourceApiTest, EgressHostsAreCheckedInMeshConfigAndNamespaceAnnotations) {
  const std::string mc = "apiVersion: config.openservicemesh.io/v1alpha2\nkind: MeshConfig\nmetadata: {name: m}\n";
  auto bare = Apply(mc + "spec: {traffic: {egressHosts: [\"./*\", httpbin]}}\n");
  ASSERT_FALSE(bare.ok());
  EXPECT_NE(bare.status().message().find("spec.traffic.egressHosts: \"httpbin\" is not NAMESPACE/NAME"), std::string::npos)
      << bare.status();
  auto wild = Apply(mc + "spec: {traffic: {egressHosts: [\"*/web*\"]}}\n");
  ASSERT_FALSE(wild.ok());
  EXPECT_NE(wild.status().message().find("\"*/web*\" is not NAMESPACE/NAME"), std::string::npos) << wild.status();
  const std::string ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, annotations: {meshplug.io/egress-hosts: ";
  auto annotated = Apply(ns + "\"./*, Auth/ext-auth\"}}\n");
  ASSERT_FALSE(annotated.ok());
  EXPECT_NE(annotated.status().message().find("metadata.annotations.meshplug.io/egress-hosts: \"Auth/ext-auth\" is not "
                                              "NAMESPACE/NAME"),
            std::string::npos)
      << annotated.status();
  auto empty = Apply(ns + "\"./*,\"}}\n");
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("\"\" is not NAMESPACE/NAME"), std::string::npos) << empty.status();
  ApplyOk(mc + "spec: {traffic: {egressHosts: [\"./*\", \"auth/ext-auth\", \"*/shared\", \"1team/*\"]}}\n");
  ApplyOk(ns + "\"./*, auth/*\"}}\n");
  ApplyOk(ns + "\"\"}}\n");  // none
}

}  // namespace
}  // namespace meshplug::control_plane::api
