#include "cli/output.h"

#include <gtest/gtest.h>

#include "meshplug/v1/resources.pb.h"
#include "resources/manifest.h"

namespace meshplug::cli {
namespace {

Objects OnePlugin() {
  auto p = std::make_unique<mesh::v1::Plugin>();
  p->set_api_version("plugin.flomesh.io/v1alpha1");
  p->set_kind("Plugin");
  p->mutable_metadata()->set_name("token-verifier");
  p->mutable_metadata()->set_resource_version(7);
  p->mutable_spec()->set_priority(115);
  p->mutable_spec()->set_script("function on_request(req, ctx)\nend\n");
  Objects out;
  out.push_back(std::move(p));
  return out;
}

// Found by fuzz/manifest: `script: |` added a line break to a script that had none.
TEST(Output, YamlOfAnyScriptAppliesBackUnchanged) {
  for (const std::string script : {"no line break at the end", "two line breaks\n\n", " starts with a space\n",
                                   "\nstarts with a line break\n", "carriage\r\nreturn\n", "control \x01\n",
                                   "true", "tab\tinside\n"}) {
    Objects objects = OnePlugin();
    static_cast<mesh::v1::Plugin&>(*objects[0]).mutable_spec()->set_script(script);
    const std::string yaml = ToYaml(objects, false);
    auto docs = resources::ParseManifest("printed", yaml);
    ASSERT_TRUE(docs.ok()) << yaml << docs.status();
    EXPECT_EQ(static_cast<const mesh::v1::Plugin&>(*(*docs)[0].object).spec().script(), script) << yaml;
  }
}

TEST(Output, YamlUsesManifestFieldNamesAndLiteralScripts) {
  const std::string yaml = ToYaml(OnePlugin(), false);
  EXPECT_EQ(yaml,
            "apiVersion: plugin.flomesh.io/v1alpha1\n"
            "kind: Plugin\n"
            "metadata:\n"
            "  name: token-verifier\n"
            "  resourceVersion: \"7\"\n"
            "spec:\n"
            "  priority: 115\n"
            "  script: |\n"
            "    function on_request(req, ctx)\n"
            "    end\n");
}

TEST(Output, JsonKeepsTheManifestOrder) {
  EXPECT_EQ(ToJson(OnePlugin(), false),
            "{\n"
            "  \"apiVersion\": \"plugin.flomesh.io/v1alpha1\",\n"
            "  \"kind\": \"Plugin\",\n"
            "  \"metadata\": {\n"
            "    \"name\": \"token-verifier\",\n"
            "    \"resourceVersion\": \"7\"\n"
            "  },\n"
            "  \"spec\": {\n"
            "    \"priority\": 115,\n"
            "    \"script\": \"function on_request(req, ctx)\\nend\\n\"\n"
            "  }\n"
            "}\n");
}

TEST(Output, ListsAreKindList) {
  EXPECT_EQ(ToYaml({}, true), "apiVersion: v1\nkind: List\nitems: []\n");
}

TEST(Output, TableHasKindColumns) {
  const std::string table = ToTable(OnePlugin(), false);
  EXPECT_EQ(table.substr(0, table.find('\n')), "NAME             PRIORITY   COMPILE   AGE");
  EXPECT_NE(table.find("token-verifier   115        <none>    <unknown>"), std::string::npos) << table;
}

TEST(Output, ProxyStatusShowsSyncAndLastNack) {
  v1::ProxyStatusResponse resp;
  auto* a = resp.add_agents();
  a->set_agent("curl/curl-1");
  a->set_connected(true);
  a->set_protocol("delta");
  a->set_snapshot_version("abc");
  a->set_identity("spiffe://cluster.local/ns/curl/sa/curl");
  a->set_certificate_expiry("2026-11-30T06:00:00Z");
  auto* t = a->add_types();
  t->set_sent_version("v2");
  t->set_acked_version("v1");
  a->add_types()->set_sent_version("x");
  a->mutable_types(1)->set_acked_version("x");
  a->set_last_nack("ChainSet: bad script");
  a->set_control_plane("10.0.0.1:15010");
  a->set_last_nack_time("2026-11-29T06:00:00Z");
  EXPECT_EQ(ProxyStatusTable(resp),
            "AGENT         CONNECTED   PROTOCOL   IDENTITY                                 CERT EXPIRES           SNAPSHOT   SYNCED   CONTROL PLANE    LAST NACK\n"
            "curl/curl-1   true        delta      spiffe://cluster.local/ns/curl/sa/curl   2026-11-30T06:00:00Z   abc        1/2      10.0.0.1:15010   2026-11-29T06:00:00Z ChainSet: bad script\n");
}

TEST(CaStatusText, ShowsThePhaseTheCasAndWhoHasNotMoved) {
  v1::CaStatus s;
  s.set_phase("activated");
  s.set_signer_key_id("bb");
  auto* ca = s.add_cas();
  ca->set_role("current");
  ca->set_key_id("aa");
  ca->set_subject("meshplug mesh root");
  ca->set_expires("2036-12-01T00:00:00Z");
  ca = s.add_cas();
  ca->set_role("next");
  ca->set_key_id("bb");
  ca->set_subject("meshplug mesh root");
  ca->set_expires("2036-12-05T00:00:00Z");
  s.add_agents_not_on_signer("curl/curl-1");
  EXPECT_EQ(CaStatusText(s),
            "phase: activated\nsigner: bb\n"
            "ROLE      KEY ID   SUBJECT              EXPIRES\n"
            "current   aa       meshplug mesh root   2036-12-01T00:00:00Z\n"
            "next      bb       meshplug mesh root   2036-12-05T00:00:00Z\n"
            "agents whose certificate is not from the signer: 1\n  curl/curl-1\n");
}

// meshctl stat's table: counts, success, no RPS without a window, latency in ms.
TEST(OutputTest, StatTable) {
  traffic::Row row;
  row.key = {"httpbin", "httpbin"};
  row.requests = 10;
  row.successes = 6;
  row.p50 = 0.0028;
  row.p95 = row.p99 = 0.01;
  EXPECT_EQ(StatTable({row}, traffic::GroupBy::kService, 0),
            "NAMESPACE   SERVICE   REQUESTS   SUCCESS   RPS   LATENCY_P50   LATENCY_P95   LATENCY_P99\n"
            "httpbin     httpbin   10         60.00%    -     2.80ms        10.00ms       10.00ms\n");
  row.p50 = -1;
  EXPECT_NE(StatTable({row}, traffic::GroupBy::kService, 5).find("60.00%    2.00   -"), std::string::npos);
}

}  // namespace
}  // namespace meshplug::cli
