// Collecting xDS resources: what is missing, what is unreferenced, the assembled snapshot,
// the saved snapshot file and the bootstrap file.
#include "agent/xds/xds_resources.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "common/x509.h"
#include "common/xds_types.h"
#include "agent/xds/bootstrap.h"
#include "agent/xds/saved_config.h"
#include "agent/xds/test_resources.h"

namespace meshplug::agent::xds {
namespace {

using namespace testing_resources;

TEST(ResourceSetTest, MissingNamesEveryUnresolvedReference) {
  ResourceSet empty;
  ASSERT_EQ(empty.Missing().size(), 1u);
  EXPECT_NE(empty.Missing()[0].find("ChainSet"), std::string::npos);

  EXPECT_TRUE(Complete().Missing().empty());
  EXPECT_TRUE(Complete().Unreferenced().empty());

  ResourceSet set = Complete();
  set.Remove(UrlOf<v1::PluginScript>(), "audit@1");
  set.Remove(UrlOf<v1::Cluster>(), "web.shop|80");
  set.Remove(UrlOf<v1::Endpoints>(), "web.shop|80|local");
  EXPECT_EQ(set.Missing(), (std::vector<std::string>{
                               "PluginScript \"audit@1\" (chain outbound-http, module audit)",
                               "Cluster \"web.shop|80\" (service web.shop)",
                               "Endpoints \"web.shop|80|local\" (cluster web.shop|80|local)",
                           }));
  EXPECT_EQ(set.Unreferenced(), (std::vector<std::string>{"Endpoints \"web.shop|80\""}));
}

TEST(ResourceSetTest, UnreferencedScriptsAndClusters) {
  ResourceSet set = Complete();
  Put(set, "audit@2", Script("audit@2"));
  Put(set, "db.shop|5432", Cluster("db.shop|5432"));
  Put(set, "db.shop|5432", Endpoints("db.shop|5432"));
  EXPECT_TRUE(set.Missing().empty());
  EXPECT_EQ(set.Unreferenced(), (std::vector<std::string>{"PluginScript \"audit@2\"", "Cluster \"db.shop|5432\""}));
}

// A cluster's Endpoints pages after the first are named "<cluster>#k" and belong to that
// cluster: referenced while it exists.
TEST(ResourceSetTest, EndpointsPagesBelongToTheirCluster) {
  ResourceSet set = Complete();
  v1::Endpoints page = Endpoints("web.shop|80");
  page.set_page(3);
  page.add_endpoints()->set_address("10.0.0.3");
  EXPECT_EQ(::meshplug::xds_types::ResourceName(page), "web.shop|80#3");
  Put(set, "web.shop|80#3", page);
  v1::Endpoints stray = Endpoints("db.shop|5432");
  stray.set_page(1);
  Put(set, "db.shop|5432#1", stray);
  EXPECT_TRUE(set.Missing().empty());
  EXPECT_EQ(set.Unreferenced(), (std::vector<std::string>{"Endpoints \"db.shop|5432#1\""}));
}

TEST(ResourceSetTest, AssembleOrdersByNameAndVersionsByContent) {
  ResourceSet a = Complete();
  v1::Snapshot s = a.Assemble();
  ASSERT_EQ(s.services_size(), 2);
  EXPECT_FALSE(s.services(0).inbound());
  EXPECT_TRUE(s.services(1).inbound());
  EXPECT_EQ(s.clusters(0).name(), "web.shop|80");
  EXPECT_EQ(s.chains().outbound_http(0).script(), "audit@1");
  EXPECT_EQ(s.version().size(), 16u);

  // Same content, other resource versions and insertion order: same snapshot version.
  ResourceSet b;
  Put(b, "web.shop|80|local", Endpoints("web.shop|80|local"), "x");
  Put(b, "web.shop|80", Endpoints("web.shop|80"), "x");
  Put(b, "web.shop|80|local", Cluster("web.shop|80|local"), "x");
  Put(b, "web.shop|80", Cluster("web.shop|80"), "x");
  Put(b, "web.shop|inbound", Service("web.shop", "web.shop|80|local", true), "x");
  Put(b, "web.shop", Service("web.shop", "web.shop|80"), "x");
  Put(b, "audit@1", Script("audit@1"), "x");
  Put(b, "chains", Chains("audit@1"), "x");
  EXPECT_EQ(b.Assemble().version(), s.version());

  Put(b, "web.shop|80", Endpoints("web.shop|80|other"), "y");
  EXPECT_NE(b.Assemble().version(), s.version());
}

TEST(ResourceSetTest, DecodeChecksTheType) {
  google::protobuf::Any any;
  any.PackFrom(Cluster("c"));
  EXPECT_TRUE(ResourceSet::Decode(UrlOf<v1::Cluster>(), any).ok());
  EXPECT_EQ(ResourceSet::Decode(UrlOf<v1::Service>(), any).status().message(),
            "a Service response holds a resource of type type.googleapis.com/meshplug.v1.Cluster");
  EXPECT_FALSE(ResourceSet::Decode("type.googleapis.com/meshplug.v1.Snapshot", any).ok());
  any.set_value("\xff\xff\xff");
  EXPECT_FALSE(ResourceSet::Decode(UrlOf<v1::Cluster>(), any).ok());

  EXPECT_EQ(::meshplug::xds_types::ResourceName(Service("web.shop", "c", true)), "web.shop|inbound");
  EXPECT_EQ(::meshplug::xds_types::ResourceName(Endpoints("c")), "c");
  EXPECT_EQ(::meshplug::xds_types::ResourceName(v1::AgentSettings()), "agent");
}

std::string TempPath(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::filesystem::path dir = std::filesystem::path(base ? base : "/tmp") / "xds_resources_test";
  std::filesystem::create_directories(dir);
  std::filesystem::remove_all(dir / name);
  return (dir / name).string();
}

TEST(SavedConfigTest, RoundTripsResourcesVersionsAndTheAgent) {
  const std::string path = TempPath("cache") + "/sub/dir/snapshot.json";
  ResourceSet set = Complete();
  set.SetTypeVersion(UrlOf<v1::Cluster>(), "sv-7");
  ASSERT_TRUE(SaveConfig(path, "shop/web-1", set, set.Assemble().version()).ok());
  // Written through a temporary file that does not stay behind.
  int files = 0;
  for (const auto& f : std::filesystem::directory_iterator(std::filesystem::path(path).parent_path())) {
    (void)f;
    ++files;
  }
  EXPECT_EQ(files, 1);

  auto loaded = LoadSavedConfig(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->agent, "shop/web-1");
  EXPECT_EQ(loaded->resources.Assemble().version(), set.Assemble().version());
  EXPECT_EQ(loaded->resources.TypeVersion(UrlOf<v1::Cluster>()), "sv-7");
  EXPECT_EQ(loaded->resources.Versions(UrlOf<v1::Service>()),
            (std::map<std::string, std::string>{{"web.shop", "v1"}, {"web.shop|inbound", "v1"}}));

  // Overwriting replaces it whole.
  set.Remove(UrlOf<v1::PluginScript>(), "audit@1");
  Put(set, "chains", Chains("audit@2"));
  Put(set, "audit@2", Script("audit@2"));
  ASSERT_TRUE(SaveConfig(path, "shop/web-1", set, set.Assemble().version()).ok());
  EXPECT_EQ(LoadSavedConfig(path)->resources.Assemble().version(), set.Assemble().version());
}

TEST(SavedConfigTest, BadFilesAreRefusedWithAReason) {
  const std::string dir = TempPath("bad");
  std::filesystem::create_directories(dir);
  EXPECT_EQ(LoadSavedConfig(dir + "/none.json").status().code(), absl::StatusCode::kNotFound);
  auto write = [&](const std::string& name, const std::string& content) {
    std::ofstream(dir + "/" + name) << content;
    return dir + "/" + name;
  };
  EXPECT_NE(
      LoadSavedConfig(write("torn.json", "{\"format\": \"meshplug-agent-sna")).status().message().find("not JSON"),
      std::string::npos);
  EXPECT_NE(LoadSavedConfig(write("other.json", "{\"format\": \"x\"}")).status().message().find("format"),
            std::string::npos);
  ResourceSet incomplete = Complete();
  incomplete.Remove(UrlOf<v1::PluginScript>(), "audit@1");
  ASSERT_TRUE(SaveConfig(dir + "/incomplete.json", "a/b", incomplete, incomplete.Assemble().version()).ok());
  EXPECT_NE(LoadSavedConfig(dir + "/incomplete.json").status().message().find("incomplete"), std::string::npos);
}

TEST(BootstrapTest, ParsesEveryKeyAndFlagsOverride) {
  auto b = ParseBootstrap(R"(
node:
  id: web-1
  namespace: shop
  labels: {app: web, version: v2}
  service_account: web
  address: 10.0.0.7
  inbound_port: 15003
  app_ports: [8080, 9090]
xds:
  address: cp.mesh:15010
  protocol: sotw
  ca: |
    -----BEGIN CERTIFICATE-----
    -----END CERTIFICATE-----
join_token: mpt1.a.b
identity_file: /var/lib/meshplug/web-1.identity.pem
snapshot_cache: /var/lib/meshplug/web-1.json
)");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->AgentId(), "shop/web-1");
  EXPECT_EQ(b->labels.at("version"), "v2");
  EXPECT_EQ(b->app_ports, (std::vector<uint32_t>{8080, 9090}));
  EXPECT_EQ(b->xds_protocol, "sotw");
  EXPECT_EQ(b->xds_ca, "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n");
  EXPECT_EQ(b->join_token, "mpt1.a.b");
  EXPECT_EQ(b->identity_file, "/var/lib/meshplug/web-1.identity.pem");
  EXPECT_FALSE(Validate(*b).ok());  // an empty PEM block is no CA
  x509::Profile root;
  root.is_ca = true;
  b->xds_ca = *x509::SelfSignedCa(*x509::NewPrivateKey(), root);
  EXPECT_TRUE(Validate(*b).ok()) << Validate(*b);

  Bootstrap flags;
  flags.node_id = "web-2";
  flags.labels = {{"app", "web2"}};
  b->Override(flags);
  EXPECT_EQ(b->node_id, "web-2");
  EXPECT_EQ(b->namespace_, "shop");
  EXPECT_EQ(b->labels, (std::map<std::string, std::string>{{"app", "web2"}}));

  auto node = MakeNode(*b, 40000);
  EXPECT_EQ(node.id(), "web-2");
  const auto& md = node.metadata().fields();
  EXPECT_EQ(md.at("namespace").string_value(), "shop");
  EXPECT_EQ(md.at("inbound_port").number_value(), 15003);  // the bootstrap's, not the listener's
  EXPECT_EQ(md.at("app_ports").list_value().values(1).number_value(), 9090);
  EXPECT_EQ(md.at("labels").struct_value().fields().at("app").string_value(), "web2");
  // It tells scripts apart by their source: the control plane may replace one in place.
  EXPECT_EQ(std::vector<std::string>(node.client_features().begin(), node.client_features().end()),
            std::vector<std::string>{xds_types::kScriptsByContentFeature});
  b->inbound_port = 0;
  EXPECT_EQ(MakeNode(*b, 40000).metadata().fields().at("inbound_port").number_value(), 40000);
  EXPECT_FALSE(md.contains("admin_address"));
  EXPECT_EQ(MakeNode(*b, 40000, "10.0.0.7:15000").metadata().fields().at("admin_address").string_value(),
            "10.0.0.7:15000");
}

TEST(BootstrapTest, ErrorsNameTheKey) {
  EXPECT_NE(ParseBootstrap("node: {id: a, nmespace: b}\n").status().message().find("node.nmespace: unknown key"),
            std::string::npos);
  EXPECT_NE(ParseBootstrap("node: {inbound_port: 70000}\n").status().message().find("node.inbound_port"),
            std::string::npos);
  EXPECT_NE(ParseBootstrap("node: {labels: [a]}\n").status().message().find("node.labels: must be a mapping"),
            std::string::npos);
  EXPECT_NE(ParseBootstrap("node: [\n").status().message().find("bootstrap"), std::string::npos);
  Bootstrap b;
  b.node_id = "a";
  EXPECT_NE(Validate(b).message().find("namespace"), std::string::npos);
  b.namespace_ = "n";
  EXPECT_NE(Validate(b).message().find("control plane address"), std::string::npos);
  for (const char* bad : {"127.0.0.1", "h:1,h", "h:0", ":15010", "h:99999"}) {
    b.xds_address = bad;
    EXPECT_NE(Validate(b).message().find("is not host:port"), std::string::npos) << bad << ": " << Validate(b);
  }
  b.xds_address = "h:1,[::1]:2,";
  EXPECT_NE(Validate(b).message().find("roots that verify the control plane"), std::string::npos);
  b.xds_ca = "not a certificate";
  EXPECT_NE(Validate(b).message().find("the control plane's CA (xds.ca): no PEM certificate found"), std::string::npos)
      << Validate(b);
  b.xds_ca.clear();
  b.xds_ca_file = "/ca.pem";
  b.xds_protocol = "rest";
  EXPECT_FALSE(Validate(b).ok());
  EXPECT_EQ(*ParseLabels("app=web,tier=front"),
            (std::map<std::string, std::string>{{"app", "web"}, {"tier", "front"}}));
  EXPECT_FALSE(ParseLabels("app").ok());
  EXPECT_EQ(*ParsePorts("80,8080"), (std::vector<uint32_t>{80, 8080}));
  EXPECT_FALSE(ParsePorts("80,x").ok());
}

}  // namespace
}  // namespace meshplug::agent::xds
