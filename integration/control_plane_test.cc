// The control plane and meshctl as real processes: the reference scenario's manifests
// round-trip, bad input gets one-line errors, and a SIGKILL mid-apply loses no
// acknowledged write and leaves no half-applied apply.
#include <gtest/gtest.h>

#include <fstream>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <atomic>
#include <cerrno>
#include <filesystem>
#include <map>
#include <thread>

#include "integration/harness/control_plane_process.h"
#include "integration/harness/process.h"

namespace meshplug::integration {

using namespace harness;  // the process harness is this package's vocabulary
namespace {

using std::chrono::milliseconds;
constexpr milliseconds kStartTimeout(20000);

// Started on construction, with its own store and meshctl credentials in `dir`.
struct ControlPlane : ControlPlaneProcess {
  explicit ControlPlane(const std::string& dir) : ControlPlaneProcess(dir) { EXPECT_EQ(Start(), ""); }
};

// Every key and value of `applied` is in `got` (which may have more: metadata, status).
void ExpectContains(const YAML::Node& applied, const YAML::Node& got, const std::string& path) {
  ASSERT_TRUE(got.IsDefined() && !got.IsNull()) << path << " missing";
  switch (applied.Type()) {
    case YAML::NodeType::Map:
      ASSERT_TRUE(got.IsMap()) << path;
      for (const auto& kv : applied) {
        const std::string key = kv.first.as<std::string>();
        ExpectContains(kv.second, got[key], path + "." + key);
      }
      break;
    case YAML::NodeType::Sequence:
      ASSERT_TRUE(got.IsSequence()) << path;
      ASSERT_EQ(applied.size(), got.size()) << path;
      for (size_t i = 0; i < applied.size(); ++i) {
        ExpectContains(applied[i], got[i], path + "[" + std::to_string(i) + "]");
      }
      break;
    default:
      EXPECT_EQ(applied.Scalar(), got.Scalar()) << path;
  }
}

TEST(ControlPlane, ScenarioManifestsApplyAndReadBackAsApplied) {
  ControlPlane cp(TempDir("scenario"));
  auto applied = cp.Meshctl({"apply", "-f", "integration/scenario"});
  ASSERT_EQ(applied.exit_code, 0) << applied.err;
  EXPECT_NE(applied.out.find("pluginchain/token-verifier-chain created"), std::string::npos) << applied.out;
  EXPECT_NE(applied.out.find("pluginconfig/token-injector-config created"), std::string::npos) << applied.out;

  int checked = 0;
  for (const auto& file : std::filesystem::directory_iterator("integration/scenario")) {
    for (const YAML::Node& doc : YAML::LoadAllFromFile(file.path().string())) {
      std::vector<std::string> args = {"get", doc["kind"].as<std::string>(),
                                       doc["metadata"]["name"].as<std::string>(), "-o", "yaml"};
      if (doc["metadata"]["namespace"]) {
        args.insert(args.end(), {"-n", doc["metadata"]["namespace"].as<std::string>()});
      }
      auto got = cp.Meshctl(args);
      ASSERT_EQ(got.exit_code, 0) << got.err;
      const YAML::Node back = YAML::Load(got.out);
      ExpectContains(doc, back, file.path().filename().string());
      EXPECT_FALSE(back["metadata"]["resourceVersion"].as<std::string>().empty());
      EXPECT_FALSE(back["metadata"]["creationTimestamp"].as<std::string>().empty());
      ++checked;
    }
  }
  EXPECT_EQ(checked, 10);

  // What get prints applies back unchanged (metadata and status included).
  auto yaml = cp.Meshctl({"get", "pluginconfig", "token-verifier-config", "-n", "httpbin", "-o", "yaml"});
  auto reapplied = cp.Meshctl({"apply", "-f", "-"}, yaml.out);
  EXPECT_EQ(reapplied.out, "pluginconfig/token-verifier-config unchanged\n") << reapplied.err;

  auto again = cp.Meshctl({"apply", "-f", "integration/scenario/03-plugin-chains.yaml"});
  EXPECT_EQ(again.out, "pluginchain/token-injector-chain unchanged\npluginchain/token-verifier-chain unchanged\n");

  auto removed = cp.Meshctl({"delete", "-f", "integration/scenario/05-token-injector-config.yaml"});
  EXPECT_EQ(removed.out, "pluginconfig/token-injector-config deleted\n") << removed.err;
  EXPECT_EQ(cp.Meshctl({"get", "picfg", "token-injector-config", "-n", "curl"}).err,
            "error: PluginConfig curl/token-injector-config not found\n");

  auto table = cp.Meshctl({"get", "pluginchains", "-A"});
  EXPECT_EQ(table.exit_code, 0);
  EXPECT_NE(table.out.find("httpbin     token-verifier-chain   inbound-http:token-verifier"), std::string::npos)
      << table.out;
}

std::vector<std::string> Chain(const YAML::Node& dump, const char* name) {
  std::vector<std::string> out;
  for (const auto& m : dump["chains"][name]) out.push_back(m.as<std::string>());
  return out;
}

// docs/spec.md §11 step 2: the plugins sit between circuit-breaker/throttle-route and
// http-load-balancing, and the resources' status says where they run.
TEST(ControlPlane, ReferenceScenarioStep2ChainsAndStatus) {
  ControlPlane cp(TempDir("step2"));
  for (const char* f : {"integration/scenario/00-namespaces.yaml", "integration/scenario/01-services.yaml",
                        "integration/scenario/02-enable-plugins.yaml", "integration/scenario/03-plugin-chains.yaml",
                        "integration/testdata/workloads.yaml"}) {
    auto r = cp.Meshctl({"apply", "-f", f});
    ASSERT_EQ(r.exit_code, 0) << f << ": " << r.err;
  }
  // The chains name plugins that do not exist yet: status says so.
  auto missing = cp.Meshctl({"get", "pluginchain", "token-verifier-chain", "-n", "httpbin", "-o", "yaml"});
  ASSERT_TRUE(Eventually([&] {
    missing = cp.Meshctl({"get", "pluginchain", "token-verifier-chain", "-n", "httpbin", "-o", "yaml"});
    return YAML::Load(missing.out)["status"]["missingPlugins"].IsSequence();
  }, milliseconds(10000))) << missing.out;
  EXPECT_EQ(YAML::Load(missing.out)["status"]["missingPlugins"][0].as<std::string>(), "token-verifier");

  auto plugins = cp.Meshctl({"apply", "-f", "plugins/examples/token-injector.yaml", "-f",
                             "plugins/examples/token-verifier.yaml"});
  ASSERT_EQ(plugins.exit_code, 0) << plugins.err;

  std::vector<std::string> curl_chain;
  ASSERT_TRUE(Eventually([&] {
    auto dump = cp.Meshctl({"proxy", "config_dump", "curl/curl-1"});
    curl_chain = dump.exit_code == 0 ? Chain(YAML::Load(dump.out), "outbound-http") : std::vector<std::string>{};
    return curl_chain.size() == 8;
  }, milliseconds(10000)));
  EXPECT_EQ(curl_chain, (std::vector<std::string>{"http-routing", "metrics", "tracing", "logging", "circuit-breaker",
                                                  "token-injector", "http-load-balancing", "http-default"}));
  auto httpbin = cp.Meshctl({"proxy", "config_dump", "httpbin-1.httpbin"});
  ASSERT_EQ(httpbin.exit_code, 0) << httpbin.err;
  EXPECT_EQ(Chain(YAML::Load(httpbin.out), "inbound-http"),
            (std::vector<std::string>{"tls-termination", "http-routing", "metrics", "tracing", "logging",
                                      "throttle-service", "throttle-route", "token-verifier", "http-load-balancing",
                                      "http-default"}));

  const YAML::Node plugin = YAML::Load(cp.Meshctl({"get", "plugin", "token-injector", "-o", "yaml"}).out);
  EXPECT_EQ(plugin["status"]["agents"][0].as<std::string>(), "curl/curl-1");
  EXPECT_EQ(plugin["status"]["compile"].as<std::string>(), "ok");
  const YAML::Node chain = YAML::Load(cp.Meshctl({"get", "pichn", "token-verifier-chain", "-n", "httpbin", "-o", "yaml"}).out);
  EXPECT_EQ(chain["status"]["matchedAgents"][0].as<std::string>(), "httpbin/httpbin-1");
  EXPECT_FALSE(chain["status"]["missingPlugins"]);

  auto unknown = cp.Meshctl({"proxy", "config_dump", "nobody/none"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_EQ(unknown.err, "error: no agent \"nobody/none\" (name it namespace/name; see meshctl proxy status)\n");
}

TEST(ControlPlane, BadInputGetsOneLineErrorsAndChangesNothing) {
  ControlPlane cp(TempDir("bad-input"));
  const std::string bad =
      "apiVersion: v1\nkind: Namespace\nmetadata: {name: good}\n---\n"
      "apiVersion: plugin.flomesh.io/v1alpha1\nkind: Plugin\nmetadata: {name: p}\n"
      "spec: {priority: 1, pipyscript: \"pipy()\"}\n";
  auto r = cp.Meshctl({"apply", "-f", "-"}, bad);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err,
            "error: -: document 2 (Plugin p): spec.pipyscript (line 8): PipyJS is not supported; "
            "write the plugin in Lua 5.4 and put it in spec.script\n");
  auto ns = cp.Meshctl({"get", "ns", "good"});
  EXPECT_EQ(ns.exit_code, 1);
  EXPECT_EQ(ns.err, "error: Namespace good not found\n");

  auto unknown = cp.Meshctl({"frobnicate"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_EQ(unknown.err, "error: unknown command \"frobnicate\" (see meshctl --help)\n");

  auto flag = cp.Meshctl({"get", "ns", "--dry-run"});
  EXPECT_EQ(flag.err, "error: flag --dry-run does not apply to 'get'\n");

  // Endless input is cut at the apply limit, not read forever.
  auto endless = cp.Meshctl({"apply", "-f", "/dev/zero"});
  EXPECT_EQ(endless.exit_code, 1);
  EXPECT_EQ(endless.err, "error: /dev/zero: the manifests are larger than 8388608 bytes; apply them in parts\n");
  // A Latin-1 file is refused by meshctl with its line, before anything is sent.
  auto latin1 = cp.Meshctl({"apply", "-f", "-"}, "apiVersion: v1\nkind: Namespace\nmetadata: {name: caf\xE9}\n");
  EXPECT_EQ(latin1.exit_code, 1);
  EXPECT_EQ(latin1.err, "error: -: line 3: not UTF-8 text (manifests are YAML or JSON in UTF-8)\n");
  // An alias bomb under 1 KB is refused before anything is built, also as a dry run.
  const std::string bomb =
      "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
      "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
      "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
      "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\n";
  auto bombed = cp.Meshctl({"apply", "--dry-run", "-f", "-"}, bomb);
  EXPECT_EQ(bombed.exit_code, 1);
  EXPECT_EQ(bombed.err,
            "error: -: document 1: more than 100000 YAML nodes (an alias counts as a copy of what it names)\n");

  auto down = harness::Run({"cli/meshctl", "--config", cp.config_path(), "--server", "127.0.0.1:1", "version"});
  EXPECT_EQ(down.exit_code, 1);
  EXPECT_EQ(down.err.rfind("error: cannot reach the control plane at 127.0.0.1:1", 0), 0u) << down.err;
}

TEST(ControlPlane, TheAdminApiNeedsACredentialAndReadOnlyCannotChangeAnything) {
  ControlPlane cp(TempDir("credentials"));
  struct stat st {};
  ASSERT_EQ(::stat(cp.config_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);  // it holds an admin token

  auto missing = harness::Run({"cli/meshctl", "--config", cp.dir() + "/nope", "get", "ns"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(missing.err, "error: no credentials file " + cp.dir() +
                             "/nope (the control plane writes it at start; give another with --config)\n");

  // The same file without its token: TLS works, nothing is served.
  std::string config;
  {
    std::ifstream in(cp.config_path());
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("token:", 0) != 0) config += line + "\n";
    }
  }
  std::ofstream(cp.dir() + "/no-token") << config;
  for (const std::vector<std::string>& args : {std::vector<std::string>{"get", "ns"}, {"proxy", "status"},
                                               {"apply", "-f", "integration/scenario/00-namespaces.yaml"}}) {
    std::vector<std::string> argv = {"cli/meshctl", "--config", cp.dir() + "/no-token"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = harness::Run(argv);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("needs an admin API credential"), std::string::npos) << r.err;
  }

  auto viewer = cp.Meshctl({"token", "create", "--role", "read-only", "--ttl", "1h"});
  ASSERT_EQ(viewer.exit_code, 0) << viewer.err;
  const std::string token = viewer.out.substr(0, viewer.out.find('\n'));
  EXPECT_EQ(cp.Meshctl({"--token", token, "get", "ns"}).exit_code, 0);
  auto apply = cp.Meshctl({"--token", token, "apply", "-f", "integration/scenario/00-namespaces.yaml"});
  EXPECT_EQ(apply.exit_code, 1);
  EXPECT_EQ(apply.err, "error: apply needs the admin role; this credential is read-only\n");
  auto dump = cp.Meshctl({"--token", token, "proxy", "config_dump", "curl/curl-1"});
  EXPECT_EQ(dump.err, "error: config dump needs the admin role; this credential is read-only\n");
  std::string forged_token = token;
  forged_token[token.size() - 10] = token[token.size() - 10] == 'A' ? 'B' : 'A';  // inside the signature
  auto forged = cp.Meshctl({"--token", forged_token, "get", "ns"});
  EXPECT_EQ(forged.err,
            "error: the token's signature does not verify: it was not issued by this mesh's control plane\n");
  EXPECT_EQ(cp.Meshctl({"get", "ns"}).out, "");  // nothing was applied
  // The control plane's log names refusals, never the tokens.
  EXPECT_NE(cp.process().Log().find("admin call refused"), std::string::npos);
  EXPECT_EQ(cp.process().Log().find(token.substr(5, 20)), std::string::npos);
}

TEST(ControlPlane, AStoreThatIsNotUsableIsRefusedWithTheWayOut) {
  const std::string dir = TempDir("bad-store");
  std::ofstream(dir + "/store.db") << "garbage, not a database";
  auto refused = harness::Run({"control_plane/control_plane", "--listen", "127.0.0.1:0", "--store", dir + "/store.db",
                               "--client_config", dir + "/config"},
                              "", milliseconds(20000));
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("is not usable: it is not an SQLite database"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("--store_init"), std::string::npos) << refused.err;
  // The way out: an empty mesh, the old file kept aside.
  auto init = Process::Start({"control_plane/control_plane", "--listen", "127.0.0.1:0", "--store", dir + "/store.db",
                              "--store_init", "--client_config", dir + "/config"},
                             dir + "/init.log");
  EXPECT_TRUE(init->WaitForLog("\"msg\":\"listening\"", kStartTimeout)) << init->Log();
  EXPECT_NE(init->Log().find("kept aside"), std::string::npos) << init->Log();
}

TEST(ControlPlane, AKeepaliveOutOfRangeIsRefusedNamingTheFlag) {
  const std::string dir = TempDir("bad-keepalive");
  for (const char* s : {"0", "7201", "-5"}) {
    auto refused = harness::Run({"control_plane/control_plane", "--listen", "127.0.0.1:0", "--store", dir + "/store.db",
                                 "--store_init", "--client_config", dir + "/config", "--keepalive_s", s},
                                "", milliseconds(20000));
    EXPECT_EQ(refused.exit_code, 1) << s;
    EXPECT_NE(refused.err.find(std::string("--keepalive_s must be 1 to 7200, not ") + s), std::string::npos)
        << refused.err;
    EXPECT_FALSE(std::filesystem::exists(dir + "/store.db")) << "refused after the store was made";
  }
}

// What `chrt -p` shows for each of its threads: the batch policy, which the process set
// before starting any (gRPC's included).
TEST(ControlPlane, EveryThreadRunsWithTheBatchSchedulingPolicy) {
  // The control plane would inherit a batch policy from the test: ours is the default.
  sched_param param{};
  ASSERT_EQ(sched_setscheduler(0, SCHED_OTHER, &param), 0);
  ControlPlane cp(TempDir("batch"));
  int threads = 0;
  for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(cp.process().pid()) + "/task")) {
    const pid_t tid = std::stoi(task.path().filename().string());
    const int policy = sched_getscheduler(tid);
    if (policy == -1 && errno == ESRCH) continue;  // a thread that ended meanwhile
    EXPECT_EQ(policy, SCHED_BATCH) << "thread " << tid;
    ++threads;
  }
  EXPECT_GT(threads, 2);
}

TEST(ControlPlane, SigtermShutsDownCleanly) {
  ControlPlane cp(TempDir("sigterm"));
  cp.process().Signal(SIGTERM);
  EXPECT_EQ(cp.process().Wait(milliseconds(10000)), 0);
  EXPECT_TRUE(cp.process().WaitForLog("\"msg\":\"stopped\"", milliseconds(1000)));
}

// Applies of three namespaces each race a SIGKILL. After a restart every acknowledged
// apply is there, and no apply is there in part.
TEST(ControlPlane, SigkillMidApplyLosesNoAcknowledgedWriteAndNoApplyIsHalfDone) {
  const std::string dir = TempDir("sigkill");
  ControlPlane cp(dir);
  constexpr int kMaxApplies = 400;
  std::atomic<int> acknowledged{0};
  std::vector<bool> acked(kMaxApplies, false);
  std::thread writer([&] {
    for (int i = 0; i < kMaxApplies; ++i) {
      std::string docs;
      for (const char* part : {"a", "b", "c"}) {
        docs += "apiVersion: v1\nkind: Namespace\nmetadata: {name: n" + std::to_string(i) + "-" + part +
                "}\n---\n";
      }
      auto r = cp.Meshctl({"apply", "-f", "-"}, docs);
      if (r.exit_code != 0) break;  // the control plane is gone
      acked[i] = true;
      ++acknowledged;
    }
  });
  ASSERT_TRUE(Eventually([&] { return acknowledged >= 20; }, milliseconds(60000)));
  cp.process().Signal(SIGKILL);
  writer.join();
  ASSERT_EQ(cp.process().Wait(milliseconds(5000)), 128 + SIGKILL);

  cp.Start();
  auto list = cp.Meshctl({"get", "ns", "-o", "yaml"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  std::map<int, int> parts;  // apply index -> namespaces of it found
  for (const auto& item : YAML::Load(list.out)["items"]) {
    const std::string name = item["metadata"]["name"].as<std::string>();
    parts[std::stoi(name.substr(1, name.find('-') - 1))]++;
  }
  int found_acked = 0;
  for (int i = 0; i < kMaxApplies; ++i) {
    if (acked[i]) {
      EXPECT_EQ(parts[i], 3) << "acknowledged apply " << i << " lost";
      ++found_acked;
    } else {
      EXPECT_TRUE(parts[i] == 0 || parts[i] == 3) << "apply " << i << " half-applied: " << parts[i];
    }
  }
  EXPECT_GE(found_acked, 20);
}

}  // namespace
}  // namespace meshplug::integration
