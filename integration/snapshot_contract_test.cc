// The contract between translation and the agent: every snapshot the control plane makes
// for the reference scenario is one the agent's routing tables and built-in modules accept,
// and a plugin's mesh name resolves to the service's endpoint.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "resources/manifest.h"
#include "control_plane/testing/whole_translation.h"
#include "control_plane/translate/translate.h"
#include "plugins/builtin/builtins.h"
#include "agent/routing/mesh_view.h"
#include "plugins/builtin/state.h"

namespace meshplug::integration {
namespace {

namespace store = control_plane::store;
namespace translate = control_plane::translate;

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

translate::MeshState ScenarioState() {
  translate::MeshState state;
  for (const char* f : {"integration/scenario/00-namespaces.yaml", "integration/scenario/01-services.yaml",
                        "integration/scenario/02-enable-plugins.yaml", "plugins/examples/token-injector.yaml",
                        "plugins/examples/token-verifier.yaml", "integration/scenario/03-plugin-chains.yaml",
                        "integration/scenario/04-token-verifier-config.yaml",
                        "integration/scenario/05-token-injector-config.yaml", "integration/testdata/workloads.yaml"}) {
    auto docs = resources::ParseManifest(f, Read(f));
    EXPECT_TRUE(docs.ok()) << docs.status();
    if (!docs.ok()) continue;
    for (auto& d : *docs) {
      state.Put(store::Entry{d.key(), d.object->SerializeAsString(), ++state.revision, state.revision});
    }
  }
  return state;
}

void ExpectAccepted(const v1::Snapshot& snap) {
  auto view = agent::routing::MeshView::Build(std::make_shared<v1::Snapshot>(snap));
  ASSERT_TRUE(view.ok()) << view.status();
  Stats stats;
  plugins::builtin::BuiltinState state(stats);
  const auto& c = snap.chains();
  for (const auto* chain : {&c.inbound_http(), &c.outbound_http()}) {
    for (const auto& m : *chain) {
      if (!m.builtin()) continue;
      EXPECT_TRUE(plugins::builtin::MakeHttpBuiltin(m.name(), {*view, chain == &c.inbound_http(), &state}).ok()) << m.name();
    }
  }
  for (const auto* chain : {&c.inbound_tcp(), &c.outbound_tcp()}) {
    for (const auto& m : *chain) {
      EXPECT_TRUE(plugins::builtin::MakeTcpBuiltin(m.name(), {*view, chain == &c.inbound_tcp(), &state}).ok()) << m.name();
    }
  }
}

TEST(SnapshotContract, ScenarioSnapshotsBuildInTheAgent) {
  const translate::MeshState state = ScenarioState();
  for (const auto& [key, wl] : state.workloads) {
    SCOPED_TRACE(key.first + "/" + key.second);
    ExpectAccepted(control_plane::testing::WholeTranslation(state, wl).snapshot);
  }
}

// Two Services of the same name in two namespaces: every agent's snapshot still builds,
// and a bare name means the service of the caller's namespace.
TEST(SnapshotContract, SameServiceNameInTwoNamespacesBuildsAndResolvesPerNamespace) {
  translate::MeshState state = ScenarioState();
  auto docs = resources::ParseManifest("extra", R"(
apiVersion: v1
kind: Service
metadata: {name: httpbin, namespace: curl}
spec: {ports: [{port: 14001}], selector: {app: curl}}
)");
  ASSERT_TRUE(docs.ok()) << docs.status();
  state.Put(store::Entry{(*docs)[0].key(), (*docs)[0].object->SerializeAsString(), ++state.revision, state.revision});
  for (const auto& [key, wl] : state.workloads) {
    SCOPED_TRACE(key.first + "/" + key.second);
    const auto snap = control_plane::testing::WholeTranslation(state, wl).snapshot;
    ExpectAccepted(snap);
    auto view = agent::routing::MeshView::Build(std::make_shared<v1::Snapshot>(snap));
    ASSERT_TRUE(view.ok());
    const auto* bare = (*view)->FindService("httpbin:14001", false);
    ASSERT_NE(bare, nullptr);
    EXPECT_EQ(bare->config->name(), "httpbin." + key.first);
  }
}

TEST(SnapshotContract, OwnServiceIsBothInboundAndADestinationWithItsOwnConfigs) {
  const translate::MeshState state = ScenarioState();
  const auto snap = control_plane::testing::WholeTranslation(state, state.workloads.at({"httpbin", "httpbin-1"})).snapshot;
  auto view = agent::routing::MeshView::Build(std::make_shared<v1::Snapshot>(snap));
  ASSERT_TRUE(view.ok()) << view.status();
  // The verifier's config is on httpbin's inbound service (the agent mounts the verifier).
  EXPECT_NE((*view)->configs(true).Find("httpbin.httpbin", "token-verifier"), nullptr);
  EXPECT_EQ((*view)->configs(false).Find("httpbin.httpbin", "token-verifier"), nullptr);
  // A mesh name resolves to an endpoint of the outbound service.
  const auto target = (*view)->Resolve("httpbin.httpbin:14001");
  ASSERT_TRUE(target.has_value());
  EXPECT_EQ(target->cluster, "httpbin.httpbin|14001");
  EXPECT_EQ(target->port, 15103);  // httpbin-1's inbound listener
  EXPECT_FALSE((*view)->Resolve("nowhere.else:80").has_value());
}

}  // namespace
}  // namespace meshplug::integration
