// The agent binary under strain: it streams bodies instead of buffering them (100 MB down
// and 100 MB up, and its peak RSS barely moves), it stops within its drain time whatever
// its plugins are waiting for, and a flood of idle connections leaves its admin endpoint
// answering.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "integration/harness/process.h"
#include "integration/reference_scenario.h"

namespace meshplug::integration {

using namespace harness;  // the process harness is this package's vocabulary
namespace {

constexpr int64_t kBytes = 100 * 1024 * 1024;

// VmHWM (peak resident set) of a process, in KiB.
int64_t PeakRssKib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

// A snapshot routing big.test to `upstream_port`; with `stall_port`, a plugin first in the
// chain calls a service there that never answers, with a 30 s timeout.
std::string Snapshot(int upstream_port, int stall_port = 0) {
  const std::string stall =
      stall_port == 0 ? ""
                      : R"({"name": "stall", "priority": 200, "script": "stall@1"},)";
  const std::string scripts =
      stall_port == 0 ? ""
                      : R"("scripts": [{"name": "stall@1", "plugin": "stall", "source": "function on_request(req, ctx) http_call{host = '127.0.0.1:)" +
                            std::to_string(stall_port) + R"(', timeout = 30} end"}],)";
  return R"({
  "version": "memory-test",)" + scripts + R"(
  "chains": {"name": "chains", "outboundHttp": [)" + stall + R"(
    {"name": "http-routing", "priority": 160, "builtin": true},
    {"name": "http-load-balancing", "priority": 110, "builtin": true},
    {"name": "http-default", "priority": 100, "builtin": true}]},
  "services": [{"name": "big.test", "hosts": ["big.test"],
    "ports": [{"port": 80, "protocol": "PROTOCOL_HTTP"}],
    "routes": [{"name": "all", "match": {"prefix": "/"}, "clusters": [{"cluster": "big", "weight": 1}]}]}],
  "clusters": [{"name": "big"}],
  "endpoints": [{"cluster": "big", "endpoints": [{"address": "127.0.0.1", "port": )" +
         std::to_string(upstream_port) + R"(}]}]
})";
}

TEST(AgentMemory, HundredMegabytesEachWayKeepPeakRssFlat) {
  const std::string dir = TempDir("memory");
  auto upstream = Process::Start({"/usr/bin/python3", "integration/big_body_upstream.py"}, dir + "/upstream.log");
  auto up_line = upstream->WaitForLog("upstream: listening on 127.0.0.1:", milliseconds(20000));
  ASSERT_TRUE(up_line) << upstream->Log();
  std::ofstream(dir + "/snapshot.json") << Snapshot(PortAfter(*up_line, "listening on 127.0.0.1:"));

  auto agent = Process::Start({"agent/agent", "--snapshot_file", dir + "/snapshot.json", "--bind_address",
                               "127.0.0.1", "--outbound_port", "0", "--inbound_port", "0", "--admin_port", "0",
                               "--workers", "1"},
                              dir + "/agent.log");
  auto line = agent->WaitForLog("agent: listening", milliseconds(20000));
  ASSERT_TRUE(line) << agent->Log();
  const std::string proxy = "http://127.0.0.1:" + std::to_string(PortAfter(*line, "outbound="));

  // Warm up, then take the baseline.
  auto warm = harness::Run({"/usr/bin/curl", "-s", "-x", proxy, "http://big.test/big?bytes=1000000", "-o", "/dev/null",
                   "-w", "%{http_code}"});
  ASSERT_EQ(warm.out, "200") << warm.err;
  const int64_t before = PeakRssKib(agent->pid());

  auto down = harness::Run({"/usr/bin/curl", "-s", "-x", proxy, "http://big.test/big?bytes=" + std::to_string(kBytes), "-o",
                   "/dev/null", "-w", "%{http_code} %{size_download}"},
                  "", milliseconds(120000));
  EXPECT_EQ(down.out, "200 " + std::to_string(kBytes)) << down.err;

  const std::string body(kBytes, 'x');
  auto up = harness::Run({"/usr/bin/curl", "-s", "-x", proxy, "-H", "Transfer-Encoding: chunked", "--data-binary", "@-",
                 "http://big.test/sink"},
                body, milliseconds(120000));
  EXPECT_EQ(up.out, std::to_string(kBytes)) << up.err;

  const int64_t after = PeakRssKib(agent->pid());
  RecordProperty("peak_rss_kib_before", std::to_string(before));
  RecordProperty("peak_rss_kib_after", std::to_string(after));
  // 200 MB went through; a buffered body would show as ~100 MB of growth.
  EXPECT_LT(after - before, 16 * 1024) << "peak RSS " << before << " KiB → " << after << " KiB";
}

// A listening socket that never accepts: connections to it get no reply.
struct Silent {
  Silent() {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    listen(fd, 8);
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  ~Silent() { close(fd); }
  // A connection waits to be accepted.
  bool Called() const {
    pollfd p{fd, POLLIN, 0};
    return poll(&p, 1, 0) == 1;
  }
  int fd;
  int port;
};

TEST(AgentShutdown, EndsWithinTheDrainTimeoutWhileAPluginWaits) {
  const std::string dir = TempDir("shutdown");
  Silent silent;
  std::ofstream(dir + "/snapshot.json") << Snapshot(1, silent.port);
  auto agent = Process::Start({"agent/agent", "--snapshot_file", dir + "/snapshot.json", "--bind_address", "127.0.0.1",
                               "--outbound_port", "0", "--inbound_port", "0", "--admin_port", "0", "--workers", "1",
                               "--drain_timeout", "1s"},
                              dir + "/agent.log");
  auto line = agent->WaitForLog("agent: listening", milliseconds(20000));
  ASSERT_TRUE(line) << agent->Log();
  const std::string proxy = "http://127.0.0.1:" + std::to_string(PortAfter(*line, "outbound="));
  auto client = Process::Start({"/usr/bin/curl", "-s", "--max-time", "60", "-x", proxy, "http://big.test/"},
                               dir + "/curl.log");
  ASSERT_TRUE(Eventually([&] { return silent.Called(); }, milliseconds(10000))) << agent->Log();

  const auto signalled = std::chrono::steady_clock::now();
  agent->Signal(SIGTERM);
  EXPECT_EQ(agent->Wait(milliseconds(10000)), 0) << agent->Log();
  const auto took = std::chrono::steady_clock::now() - signalled;
  EXPECT_LT(took, std::chrono::seconds(4)) << "drain timeout 1 s";
}

// A client connection to 127.0.0.1:`port` that sends nothing.
struct IdleConnection {
  explicit IdleConnection(int port) {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    connected = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~IdleConnection() { close(fd); }
  int fd;
  bool connected;
};

// The value of a stats line starting with `series`, or -1.
int64_t Stat(const std::string& stats, const std::string& series) {
  std::istringstream in(stats);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(series + " ", 0) == 0) return std::stoll(line.substr(series.size() + 1));
  }
  return -1;
}

TEST(AgentConnections, AFloodOfIdleConnectionsLeavesAdminAndLaterRequestsServed) {
  const std::string dir = TempDir("connections");
  auto upstream = Process::Start({"/usr/bin/python3", "integration/big_body_upstream.py"}, dir + "/upstream.log");
  auto up_line = upstream->WaitForLog("upstream: listening on 127.0.0.1:", milliseconds(20000));
  ASSERT_TRUE(up_line) << upstream->Log();
  std::ofstream(dir + "/snapshot.json") << Snapshot(PortAfter(*up_line, "listening on 127.0.0.1:"));
  // 256 descriptors: the default limit per proxy listener is (256 - 64) / 4 = 48.
  auto agent = Process::Start({"/usr/bin/prlimit", "--nofile=256:256", "agent/agent", "--snapshot_file",
                               dir + "/snapshot.json", "--bind_address", "127.0.0.1", "--outbound_port", "0",
                               "--inbound_port", "0", "--admin_port", "0", "--workers", "1"},
                              dir + "/agent.log");
  auto line = agent->WaitForLog("agent: listening", milliseconds(20000));
  ASSERT_TRUE(line) << agent->Log();
  const int outbound = PortAfter(*line, "outbound=");
  const std::string admin = "http://127.0.0.1:" + std::to_string(PortAfter(*line, "admin="));
  auto get = [&](const std::string& url) {
    return harness::Run({"/usr/bin/curl", "-s", "--max-time", "5", "-w", "\n%{http_code}", url});
  };

  {
    std::vector<std::unique_ptr<IdleConnection>> flood;
    for (int i = 0; i < 400; ++i) flood.push_back(std::make_unique<IdleConnection>(outbound));
    std::string stats;
    ASSERT_TRUE(Eventually(
        [&] {
          stats = get(admin + "/stats").out;
          return Stat(stats, R"(meshplug_agent_connections_rejected_total{listener="outbound"})") >= 300;
        },
        milliseconds(20000)))
        << stats << agent->Log();
    EXPECT_EQ(Stat(stats, R"(meshplug_agent_connections_active{listener="outbound"})"), 48) << stats;
    EXPECT_EQ(get(admin + "/ready").out, "ready\n\n200") << agent->Log();
  }

  // The flood is gone: its slots are free again and the proxy serves.
  ASSERT_TRUE(Eventually(
      [&] { return Stat(get(admin + "/stats").out, R"(meshplug_agent_connections_active{listener="outbound"})") == 0; },
      milliseconds(20000)));
  auto served = harness::Run({"/usr/bin/curl", "-s", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}", "-x",
                              "http://127.0.0.1:" + std::to_string(outbound), "http://big.test/big?bytes=10"});
  EXPECT_EQ(served.out, "200") << served.err << agent->Log();
  EXPECT_NE(agent->Log().find("listener full"), std::string::npos);
}

}  // namespace
}  // namespace meshplug::integration
