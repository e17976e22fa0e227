// The agent binary streams bodies instead of buffering them: 100 MB down and 100 MB up
// through it, and its peak RSS barely moves.
#include <gtest/gtest.h>

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

std::string Snapshot(int upstream_port) {
  return R"({
  "version": "memory-test",
  "chains": {"name": "chains", "outboundHttp": [
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

}  // namespace
}  // namespace meshplug::integration
