// meshplug agent: the sidecar proxy. Until its xDS client exists it runs on a snapshot
// read from --snapshot_file.
#include <csignal>
#include <cstdio>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/time/time.h"
#include "agent/agent.h"
#include "agent/snapshot_file.h"

ABSL_FLAG(std::string, bind_address, "0.0.0.0", "address of the outbound, inbound and TCP listeners");
ABSL_FLAG(uint16_t, outbound_port, 15001, "outbound listener port (0: any free port)");
ABSL_FLAG(uint16_t, inbound_port, 15003, "inbound listener port (0: any free port)");
ABSL_FLAG(std::string, admin_address, "127.0.0.1", "address of the admin listener");
ABSL_FLAG(uint16_t, admin_port, 15000, "admin listener port (0: any free port)");
ABSL_FLAG(int32_t, workers, 0, "worker threads (0: one per core)");
ABSL_FLAG(std::string, snapshot_file, "", "snapshot to run on (JSON or text format)");
ABSL_FLAG(uint32_t, max_header_bytes, 16 * 1024, "largest request/response header block (431)");
ABSL_FLAG(uint32_t, max_header_count, 100, "most header fields in a request/response (431)");
ABSL_FLAG(uint64_t, max_buffered_body_bytes, 1024 * 1024,
          "largest body a plugin may ask to buffer (413)");
ABSL_FLAG(absl::Duration, header_read_timeout, absl::Seconds(10),
          "time a client has to send a request header before it is disconnected");
ABSL_FLAG(absl::Duration, idle_timeout, absl::Seconds(60),
          "idle kept-alive client connections are closed after this");
ABSL_FLAG(absl::Duration, connect_timeout, absl::Seconds(2), "upstream connect timeout");
ABSL_FLAG(absl::Duration, request_timeout, absl::Seconds(15),
          "upstream response header timeout (504)");
ABSL_FLAG(absl::Duration, upstream_idle_timeout, absl::Seconds(30),
          "idle pooled upstream connections are dropped after this");
ABSL_FLAG(absl::Duration, drain_timeout, absl::Seconds(10),
          "on SIGTERM or /quitquitquit, in-flight requests get this long to finish");

namespace {

std::chrono::milliseconds Ms(absl::Duration d) {
  return std::chrono::milliseconds(absl::ToInt64Milliseconds(d));
}

meshplug::agent::AgentOptions OptionsFromFlags() {
  meshplug::agent::AgentOptions o;
  o.bind_address = absl::GetFlag(FLAGS_bind_address);
  o.outbound_port = absl::GetFlag(FLAGS_outbound_port);
  o.inbound_port = absl::GetFlag(FLAGS_inbound_port);
  o.admin_address = absl::GetFlag(FLAGS_admin_address);
  o.admin_port = absl::GetFlag(FLAGS_admin_port);
  o.workers = static_cast<size_t>(std::max(0, absl::GetFlag(FLAGS_workers)));
  o.limits.max_header_bytes = absl::GetFlag(FLAGS_max_header_bytes);
  o.limits.max_header_count = absl::GetFlag(FLAGS_max_header_count);
  o.limits.max_buffered_body_bytes = absl::GetFlag(FLAGS_max_buffered_body_bytes);
  o.limits.header_read_timeout = Ms(absl::GetFlag(FLAGS_header_read_timeout));
  o.limits.downstream_idle_timeout = Ms(absl::GetFlag(FLAGS_idle_timeout));
  o.limits.connect_timeout = Ms(absl::GetFlag(FLAGS_connect_timeout));
  o.limits.request_timeout = Ms(absl::GetFlag(FLAGS_request_timeout));
  o.limits.upstream_idle_timeout = Ms(absl::GetFlag(FLAGS_upstream_idle_timeout));
  o.drain_timeout = Ms(absl::GetFlag(FLAGS_drain_timeout));
  return o;
}

// SIGTERM/SIGINT: drain, then exit.
void DrainOnSignal(meshplug::agent::Agent& agent) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  int sig = 0;
  sigwait(&set, &sig);
  std::fprintf(stderr, "agent: signal %d, draining\n", sig);
  agent.DrainAsync();
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);

  // Block the signals before any thread starts, so only the waiter receives them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  meshplug::agent::Agent agent(OptionsFromFlags());
  if (std::string path = absl::GetFlag(FLAGS_snapshot_file); !path.empty()) {
    auto snapshot = meshplug::agent::ReadSnapshotFile(path);
    absl::Status applied = snapshot.ok() ? agent.Apply(*std::move(snapshot)) : snapshot.status();
    if (!applied.ok()) {
      std::fprintf(stderr, "agent: %s\n", applied.ToString().c_str());
      return 1;
    }
  }
  if (absl::Status started = agent.Start(); !started.ok()) {
    std::fprintf(stderr, "agent: %s\n", started.ToString().c_str());
    return 1;
  }
  std::printf("agent: listening outbound=%u inbound=%u admin=%u\n", agent.outbound_port(),
              agent.inbound_port(), agent.admin_port());
  std::fflush(stdout);
  std::thread waiter([&] { DrainOnSignal(agent); });
  waiter.detach();
  agent.Wait();
  std::fprintf(stderr, "agent: stopped\n");
  return 0;
}
