// Transparent interception in a real network namespace (issue 16): with meshplug-intercept's
// rules, an app that knows nothing of the agent calls a mesh service by an address and
// name of its own, and the agent's outbound listener serves it; without the rules the
// same call goes nowhere. Needs root and iptables (CI has both); otherwise skipped, saying
// why. The namespace is removed after the test, failed or not, and stale ones of earlier
// runs first.
#include <gtest/gtest.h>
#include <sched.h>
#include <fcntl.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include "agent/testing/test_support.h"
#include "integration/harness/netns.h"
#include "integration/harness/process.h"

namespace meshplug::integration {
namespace {

using agent::testing::AddService;
using agent::testing::BaseSnapshot;
using agent::testing::TestUpstream;
using harness::Eventually;
using harness::Process;
using std::chrono::milliseconds;

constexpr const char* kPrefix = "mp-icpt-";

bool Ok(const std::vector<std::string>& argv) { return harness::Run(argv).exit_code == 0; }

class InterceptTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = harness::NetnsUnavailable(); !why.empty()) GTEST_SKIP() << why;
    harness::RemoveStaleNamespaces(kPrefix);
    ns_ = kPrefix + std::to_string(getpid());
    harness::DeleteNamespace(ns_);
    ASSERT_TRUE(Ok({"ip", "netns", "add", ns_}));
    created_ = true;
    // Loopback, and a route out of the namespace (a veth pair inside it: nothing answers
    // there).
    const std::string failed = harness::RunAll({In({"ip", "link", "set", "lo", "up"}),
                                                In({"ip", "link", "add", "mp0", "type", "veth", "peer", "name", "mp1"}),
                                                In({"ip", "addr", "add", "10.200.0.2/24", "dev", "mp0"}),
                                                In({"ip", "link", "set", "mp0", "up"}),
                                                In({"ip", "link", "set", "mp1", "up"}),
                                                In({"ip", "route", "add", "default", "dev", "mp0"})});
    ASSERT_EQ(failed, "");
    dir_ = harness::TempDir("intercept");
  }

  void TearDown() override {
    agent_.reset();
    app_.reset();
    remote_server_.reset();
    if (!remote_.empty()) harness::DeleteNamespace(remote_);
    if (created_) harness::DeleteNamespace(ns_);
  }

  // Constructs the app inside the namespace: its sockets live there.
  void StartAppInNamespace() {
    std::thread t([&] {
      const int fd = open(("/var/run/netns/" + ns_).c_str(), O_RDONLY | O_CLOEXEC);
      if (fd >= 0 && setns(fd, CLONE_NEWNET) == 0) app_ = std::make_unique<TestUpstream>("app");
      if (fd >= 0) close(fd);
    });
    t.join();
    ASSERT_TRUE(app_) << "could not enter " << ns_;
  }

  // A second namespace on the other end of the workload's link: 10.200.0.3 (and the
  // link-local 169.254.7.7, like a cloud's metadata service), serving dir_ on port 9000.
  void StartRemoteNamespace() {
    remote_ = ns_ + "-r";
    harness::DeleteNamespace(remote_);
    ASSERT_TRUE(Ok({"ip", "netns", "add", remote_}));
    ASSERT_TRUE(Ok(In({"ip", "link", "set", "mp1", "netns", remote_})));
    for (const std::vector<std::string>& cmd : {std::vector<std::string>{"ip", "addr", "add", "10.200.0.3/24", "dev", "mp1"},
                                                {"ip", "addr", "add", "169.254.7.7/16", "dev", "mp1"},
                                                {"ip", "link", "set", "mp1", "up"},
                                                {"ip", "link", "set", "lo", "up"}}) {
      ASSERT_TRUE(Ok(InRemote(cmd)));
    }
    std::ofstream(dir_ + "/hello.txt") << "outside";
    remote_server_ = Process::Start(InRemote({"python3", "-m", "http.server", "9000", "--bind", "0.0.0.0", "--directory", dir_}),
                                    dir_ + "/remote.log");
    ASSERT_TRUE(Eventually([&] { return harness::Run(InRemote({"curl", "-s", "http://10.200.0.3:9000/hello.txt"})).out == "outside"; },
                           milliseconds(20000)));
  }

  std::vector<std::string> In(std::vector<std::string> args) const { return harness::InNamespace(ns_, std::move(args)); }
  std::vector<std::string> InRemote(std::vector<std::string> args) const {
    return harness::InNamespace(remote_, std::move(args));
  }

  harness::RunResult Intercept(const std::string& verb) { return harness::Run(In(harness::InterceptCommand(verb, "10.200.0.1/32"))); }

  // The agent in the namespace, on a snapshot with web.demo (virtual address 10.96.0.7)
  // served by the app, answering DNS for mesh names.
  void StartAgentInNamespace() {
    v1::Snapshot snapshot = BaseSnapshot("1");
    v1::Service& web = AddService(snapshot, "web.demo", {app_->port()});
    web.set_virtual_ip("10.96.0.7");
    web.add_hosts("web.demo.svc.cluster.local");  // as the control plane's translation lists it
    snapshot.mutable_settings()->set_egress_refused(egress_refused_);
    if (mtls_strict_) snapshot.mutable_settings()->set_mtls_mode(v1::MTLS_STRICT);
    const std::string snapshot_file = dir_ + "/snapshot.txt";
    std::ofstream(snapshot_file) << snapshot.DebugString();
    agent_ = Process::Start(In({"agent/agent", "--snapshot_file=" + snapshot_file,
                             "--outbound_port=15001", "--inbound_port=15003", "--admin_port=0", "--workers=1",
                             "--dns_port=15053", "--dns_upstream=10.200.0.1", "--bind_address=0.0.0.0",
                             "--admin_token_file=" + dir_ + "/admin-token"}),
                            dir_ + "/agent." + std::to_string(++agent_starts_) + ".log");  // one per start
    ASSERT_TRUE(agent_ && agent_->WaitForLog("agent: listening", milliseconds(20000))) << dir_;
  }

  // `args` run as the app would: in the namespace, as a user that is not the agent's.
  harness::RunResult AsApp(std::vector<std::string> args) {
    return harness::Run(In(harness::AsAppUser(std::move(args))));
  }

  // The app's own call: no proxy, the name resolved (as DNS would) to the Service's address.
  harness::RunResult AppCalls() {
    return AsApp({"curl", "-s", "--max-time", "3", "--resolve", "web.demo:80:10.96.0.7", "http://web.demo/get"});
  }

  std::string ns_, dir_;
  bool created_ = false;
  bool egress_refused_ = false;
  bool mtls_strict_ = false;
  int agent_starts_ = 0;
  std::unique_ptr<TestUpstream> app_;
  std::unique_ptr<Process> agent_;
  std::string remote_;
  std::unique_ptr<Process> remote_server_;
};

TEST_F(InterceptTest, AnAppCallsAMeshServiceWithoutAProxyFlag) {
  StartAppInNamespace();
  StartAgentInNamespace();

  auto installed = Intercept("install");
  ASSERT_EQ(installed.exit_code, 0) << installed.err;
  EXPECT_EQ(installed.out, "meshplug-intercept: installed (IPv4)\n");
  auto r = AppCalls();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "app");
  EXPECT_EQ(app_->requests(), 1);

  // Installing again changes nothing; removing leaves no rule of ours.
  const std::string rules = harness::Run(In({"iptables-save", "-t", "nat"})).out;
  ASSERT_EQ(Intercept("install").exit_code, 0);
  auto strip = [](std::string s) {  // counters and the header comment differ between saves
    std::string out;
    std::istringstream in(s);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty() && line[0] != '#' && line[0] != ':') out += line + "\n";
    }
    return out;
  };
  EXPECT_EQ(strip(harness::Run(In({"iptables-save", "-t", "nat"})).out), strip(rules));
  ASSERT_EQ(Intercept("remove").exit_code, 0);
  EXPECT_EQ(harness::Run(In({"iptables-save", "-t", "nat"})).out.find("MESHPLUG"), std::string::npos);
  EXPECT_NE(AppCalls().exit_code, 0);  // nothing intercepts it now: 10.96.0.7 does not answer
  EXPECT_EQ(app_->requests(), 1);
}

// The app resolves mesh names with its own resolver configuration: the agent answers them
// with the Service's virtual address, and the call to that address reaches the service.
TEST_F(InterceptTest, MeshNamesResolveToServiceAddressesThroughTheAgent) {
  StartAppInNamespace();
  StartAgentInNamespace();
  ASSERT_EQ(Intercept("install").exit_code, 0);
  auto named = AsApp({"curl", "-s", "--max-time", "5", "-w", " %{remote_ip}", "http://web.demo/get"});
  EXPECT_EQ(named.exit_code, 0) << named.err;
  EXPECT_EQ(named.out, "app 10.96.0.7");
  auto qualified = AsApp({"curl", "-s", "--max-time", "5", "http://web.demo.svc.cluster.local/get"});
  EXPECT_EQ(qualified.out, "app");
  auto ghost = AsApp({"curl", "-s", "--max-time", "5", "http://ghost.demo.svc.cluster.local/get"});
  EXPECT_EQ(ghost.exit_code, 6);  // could not resolve: NXDOMAIN
  EXPECT_EQ(app_->requests(), 2);
}

// A destination outside the mesh (a server on the other end of the namespace's link) is
// reached through the agent's outbound-tcp chain, or refused when MeshConfig says so; a
// call aimed at the agent's own address and listener is served once, not looped.
TEST_F(InterceptTest, EgressPassesThroughOrIsRefusedAndNothingLoops) {
  ASSERT_NO_FATAL_FAILURE(StartRemoteNamespace());
  StartAppInNamespace();
  StartAgentInNamespace();
  ASSERT_EQ(Intercept("install").exit_code, 0);
  auto out = AsApp({"curl", "-s", "--max-time", "5", "http://10.200.0.3:9000/hello.txt"});
  EXPECT_EQ(out.out, "outside") << out.err;
  // Link-local destinations are not passed through: the agent would reach them as itself.
  ASSERT_EQ(harness::Run(InRemote({"curl", "-s", "http://169.254.7.7:9000/hello.txt"})).out, "outside");
  auto metadata = AsApp({"curl", "-s", "--max-time", "5", "http://169.254.7.7:9000/hello.txt"});
  EXPECT_NE(metadata.exit_code, 0);
  EXPECT_EQ(metadata.out, "");
  // The agent's own address and outbound port: served as an explicit-proxy request (no
  // route for that host), not proxied to itself.
  auto self = AsApp({"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", "http://10.200.0.2:15001/"});
  EXPECT_EQ(self.exit_code, 0);
  EXPECT_NE(self.out, "000");

  // MeshConfig's egress policy refuse: the same call is closed by the agent.
  agent_.reset();
  egress_refused_ = true;
  StartAgentInNamespace();
  auto refused = AsApp({"curl", "-s", "--max-time", "5", "http://10.200.0.3:9000/hello.txt"});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_EQ(refused.out, "");
  EXPECT_EQ(AppCalls().out, "app");  // mesh services still work
}

// Inbound: a connection from outside to a port of the workload goes through the agent's
// inbound-tcp chain to that port (no Service names it: as sent); strict mTLS refuses it in
// plaintext; the outbound listener cannot be reached from outside.
TEST_F(InterceptTest, InboundConnectionsGoThroughTheAgentToTheOriginalPort) {
  ASSERT_NO_FATAL_FAILURE(StartRemoteNamespace());
  auto app = Process::Start(In({"python3", "-m", "http.server", "9100", "--bind", "0.0.0.0",
                             "--directory", dir_}),
                            dir_ + "/local-app.log");
  ASSERT_TRUE(Eventually([&] {
    return harness::Run(In({"curl", "-s", "http://127.0.0.1:9100/hello.txt"})).out == "outside";
  }, milliseconds(20000)));
  StartAppInNamespace();
  StartAgentInNamespace();
  ASSERT_EQ(Intercept("install").exit_code, 0);
  auto call = [&] { return harness::Run(InRemote({"curl", "-s", "--max-time", "5", "http://10.200.0.2:9100/hello.txt"})); };
  EXPECT_EQ(call().out, "outside");
  auto outbound = harness::Run(InRemote({"curl", "-s", "--max-time", "5", "http://10.200.0.2:15001/"}));
  EXPECT_NE(outbound.exit_code, 0);  // closed: someone outside reaching for the outbound listener
  EXPECT_EQ(outbound.out, "");
  agent_.reset();  // with the rules and no agent, nothing gets through: it went through the agent
  EXPECT_NE(call().exit_code, 0);
  mtls_strict_ = true;
  StartAgentInNamespace();
  EXPECT_NE(call().exit_code, 0);  // plaintext from outside the mesh, refused in strict mode
}

// Rules installed while connections are open (the agent's own to the control plane, an
// app's) leave those connections alone: only new connections are redirected.
TEST_F(InterceptTest, ConnectionsOpenBeforeTheRulesKeepGoing) {
  ASSERT_NO_FATAL_FAILURE(StartRemoteNamespace());
  auto echo = Process::Start(In({"python3", "integration/tcp_echo.py", "serve", "--port", "9200",
                              "--host", "0.0.0.0"}),
                             dir_ + "/echo.log");
  ASSERT_TRUE(echo && echo->WaitForLog("tcp-echo: listening", milliseconds(20000)));
  // A client in the remote namespace: half of its bytes before the rules, half after.
  std::promise<void> installed;
  std::string answer = "(no connection)";
  std::thread client([&, installed_future = installed.get_future()]() mutable {
    const int ns = open(("/var/run/netns/" + remote_).c_str(), O_RDONLY | O_CLOEXEC);
    if (ns < 0 || setns(ns, CLONE_NEWNET) != 0) return;
    close(ns);
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(9200);
    inet_pton(AF_INET, "10.200.0.2", &to.sin_addr);
    if (connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0 && write(fd, "before ", 7) == 7) {
      installed_future.wait_for(std::chrono::seconds(20));
      if (write(fd, "after", 5) == 5 && shutdown(fd, SHUT_WR) == 0) {
        answer.clear();
        char buf[256];
        for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) answer.append(buf, static_cast<size_t>(n));
      }
    }
    close(fd);
  });
  auto r = Intercept("install");
  installed.set_value();
  client.join();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(answer, "echo:before after");
}

TEST_F(InterceptTest, BadFlagsAreRefusedAndNothingIsInstalled) {
  auto r = harness::Run(In({"agent/intercept/meshplug-intercept", "install",
                "--exclude_outbound_cidrs=10.0.0.0/40"}));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "meshplug-intercept: --exclude_outbound_cidrs: \"10.0.0.0/40\" is not an address or CIDR\n");
  r = harness::Run(In({"agent/intercept/meshplug-intercept", "enable"}));
  EXPECT_EQ(r.err, "meshplug-intercept: usage: meshplug-intercept install|remove [flags] (see --help)\n");
  EXPECT_EQ(harness::Run(In({"iptables-save", "-t", "nat"})).out.find("MESHPLUG"), std::string::npos);
}

}  // namespace
}  // namespace meshplug::integration
