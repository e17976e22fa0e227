// The agent for the data-plane benchmarks: //agent's library and flags, plus the Lua
// runtime (//agent does not wire one in yet), so the token-plugin chain can be measured.
// Runs on a static snapshot file, like //agent.
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it

#include <csignal>
#include <cstdio>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "agent/agent.h"
#include "agent/snapshot_file.h"
#include "bench/dataplane/lua_script_factory.h"

ABSL_FLAG(std::string, bind_address, "127.0.0.1", "address of the outbound and inbound listeners");
ABSL_FLAG(uint16_t, outbound_port, 0, "outbound listener port (0: any free port)");
ABSL_FLAG(uint16_t, inbound_port, 0, "inbound listener port (0: any free port)");
ABSL_FLAG(uint16_t, admin_port, 0, "admin listener port (0: any free port)");
ABSL_FLAG(int32_t, workers, 1, "worker threads");
ABSL_FLAG(std::string, snapshot_file, "", "snapshot to run on (JSON or text format)");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  meshplug::agent::AgentOptions o;
  o.bind_address = absl::GetFlag(FLAGS_bind_address);
  o.outbound_port = absl::GetFlag(FLAGS_outbound_port);
  o.inbound_port = absl::GetFlag(FLAGS_inbound_port);
  o.admin_port = absl::GetFlag(FLAGS_admin_port);
  o.workers = static_cast<size_t>(std::max(1, absl::GetFlag(FLAGS_workers)));
  meshplug::bench::LuaScriptFactory scripts;
  meshplug::agent::Agent agent(o, nullptr, &scripts);
  auto snapshot = meshplug::agent::ReadSnapshotFile(absl::GetFlag(FLAGS_snapshot_file));
  absl::Status applied = snapshot.ok() ? agent.Apply(*std::move(snapshot)) : snapshot.status();
  if (!applied.ok()) {
    std::fprintf(stderr, "bench_agent: %s\n", applied.ToString().c_str());
    return 1;
  }
  if (absl::Status started = agent.Start(); !started.ok()) {
    std::fprintf(stderr, "bench_agent: %s\n", started.ToString().c_str());
    return 1;
  }
  std::printf("agent: listening outbound=%u inbound=%u admin=%u\n", agent.outbound_port(),
              agent.inbound_port(), agent.admin_port());
  std::fflush(stdout);
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&set, &sig);
    agent.DrainAsync();
  });
  waiter.detach();
  agent.Wait();
  return 0;
}
