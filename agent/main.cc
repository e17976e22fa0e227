// meshplug agent: the sidecar proxy. It gets its configuration from the control plane
// over xDS (identity from flags or --bootstrap), or runs on a fixed --snapshot_file.
#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include <unistd.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/time/time.h"
#include "agent/agent.h"
#include "agent/cpu_budget.h"
#include "agent/xds/bootstrap.h"
#include "agent/chains/script_runtime.h"
#include "agent/dns/dns_server.h"
#include "agent/snapshot_file.h"
#include "agent/xds/workload_identity.h"
#include "agent/xds/xds_client.h"
#include "common/backoff.h"
#include "common/log.h"
#include "common/deadlock_detection.h"
#include "common/files.h"
#include "common/strings.h"

ABSL_FLAG(std::string, bind_address, "0.0.0.0", "address of the outbound, inbound and TCP listeners");
ABSL_FLAG(uint16_t, outbound_port, 15001, "outbound listener port (0: any free port)");
ABSL_FLAG(uint16_t, inbound_port, 15003, "inbound listener port (0: any free port)");
ABSL_FLAG(std::string, admin_address, "127.0.0.1", "address of the admin listener");
ABSL_FLAG(uint16_t, admin_port, 15000, "admin listener port (0: any free port)");
ABSL_FLAG(uint16_t, dns_port, 0,
          "answer DNS for mesh names on 127.0.0.1 at this port (15053 with meshplug-intercept --dns_port 15053); "
          "0: no DNS server");
ABSL_FLAG(std::string, dns_upstream, "",
          "where the DNS server sends names that are not the mesh's (IP; default: the first nameserver of "
          "/etc/resolv.conf)");
ABSL_FLAG(int32_t, workers, 0,
          "worker threads (0: one per CPU the agent may use: its affinity mask, capped by its cgroup's CPU quota)");
ABSL_FLAG(uint32_t, max_connections_per_listener, 0,
          "connections one proxy listener holds at once; more are closed on arrival "
          "(0: from the descriptor limit, (RLIMIT_NOFILE-64)/4, at least 16)");
ABSL_FLAG(std::string, snapshot_file, "", "snapshot to run on (JSON or text format)");
ABSL_FLAG(std::string, tls_cert_file, "",
          "without a control plane (--snapshot_file): the workload certificate chain for mTLS (PEM); with xDS the "
          "control plane issues it");
ABSL_FLAG(std::string, tls_key_file, "", "the key of --tls_cert_file (PEM)");
ABSL_FLAG(std::string, tls_bundle_file, "", "the roots peers' certificates must verify against (PEM)");
ABSL_FLAG(std::string, admin_token_file, "",
          "where the agent writes a fresh admin token at start (mode 0600); /config_dump and /quitquitquit need "
          "it as `Authorization: Bearer TOKEN` (default: <namespace>.<name>.admin-token next to the snapshot "
          "cache, or agents/admin-token.<pid> under $MESHPLUG_HOME or ~/.local/share/meshplug without xDS)");
ABSL_FLAG(uint32_t, max_header_bytes, 16 * 1024, "largest request/response header block (431)");
ABSL_FLAG(uint32_t, max_header_count, 100, "most header fields in a request/response (431)");
ABSL_FLAG(uint32_t, http2_max_concurrent_streams, 100,
          "streams one HTTP/2 client connection runs at once (more are refused with REFUSED_STREAM)");
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
ABSL_FLAG(std::string, log_level, "info", "debug, info, warn or error");
ABSL_FLAG(uint64_t, lua_memory_total_bytes, 512ull << 20,
          "memory of all Lua plugin states together (each also has --lua_memory_per_state_bytes); 0: no total cap");
ABSL_FLAG(uint64_t, lua_memory_per_state_bytes, 16ull << 20, "memory of one Lua state (one plugin version on one worker)");
ABSL_FLAG(uint64_t, lua_instructions_per_call, 1'000'000,
          "Lua VM instructions (and library work charged as instructions) per plugin phase call");
ABSL_FLAG(absl::Duration, lua_time_per_call, absl::Milliseconds(100), "Lua running time per plugin phase call");

// Identity and control plane (flags override the bootstrap file's values).
ABSL_FLAG(std::string, bootstrap, "", "bootstrap YAML file: node identity, xds address and protocol, snapshot_cache");
ABSL_FLAG(std::string, node_id, "", "workload name (xDS node id)");
ABSL_FLAG(std::string, namespace, "", "workload namespace (must exist in the control plane)");
ABSL_FLAG(std::string, labels, "", "workload labels, key=value,key=value");
ABSL_FLAG(std::string, service_account, "", "workload service account");
ABSL_FLAG(std::string, address, "",
          "address peers' agents reach this workload's inbound listener at (default: --bind_address "
          "unless it is a wildcard)");
ABSL_FLAG(uint16_t, advertise_inbound_port, 0,
          "inbound port announced to the control plane (0: the inbound listener's port)");
ABSL_FLAG(std::string, app_ports, "", "the app's ports, comma-separated");
ABSL_FLAG(std::string, xds_address, "", "control plane address host:port (empty: no xDS)");
ABSL_FLAG(std::string, xds_protocol, "", "delta (default) or sotw");
ABSL_FLAG(std::string, xds_ca_file, "", "the roots that verify the control plane (PEM; or the bootstrap's xds.ca)");
ABSL_FLAG(std::string, join_token_file, "",
          "file holding a join token (meshctl workload token NS/NAME): buys the first certificate, once");
ABSL_FLAG(std::string, identity_file, "",
          "where the workload key and certificate are kept, mode 0600, so a restart needs no new token (default: "
          "next to the snapshot cache, <namespace>.<name>.identity.pem; \"none\": memory only)");
ABSL_FLAG(std::string, snapshot_cache, "",
          "file the last good configuration is saved to and started from when the control plane is "
          "unreachable (default: $MESHPLUG_HOME/agents/<namespace>.<name>.snapshot.json, else under "
          "~/.local/share/meshplug/agents/; \"none\": off)");
ABSL_FLAG(absl::Duration, xds_initial_fetch_timeout, absl::Seconds(5),
          "at start, serve the saved snapshot if no complete configuration came within this");
ABSL_FLAG(absl::Duration, xds_backoff_base, absl::FromChrono(meshplug::kBackoffBase),
          "first reconnect delay (then doubled, jittered)");
ABSL_FLAG(absl::Duration, xds_backoff_max, absl::FromChrono(meshplug::kBackoffMax), "longest reconnect delay");
ABSL_FLAG(absl::Duration, xds_connect_timeout, absl::Seconds(5), "one connection attempt's time limit");
ABSL_FLAG(absl::Duration, xds_settle, absl::Milliseconds(1),
          "responses this close together are applied as one update");
ABSL_FLAG(absl::Duration, xds_endpoints_warming_timeout, absl::Milliseconds(500),
          "apply an update whose clusters' endpoints have not arrived after this, with those clusters empty");
ABSL_FLAG(absl::Duration, xds_incomplete_timeout, absl::Seconds(15),
          "NACK an update whose referenced resources have not all arrived after this");
ABSL_FLAG(absl::Duration, xds_keepalive, absl::Seconds(30), "HTTP/2 keepalive ping interval on the xDS stream");

namespace {

std::chrono::milliseconds Ms(absl::Duration d) {
  return std::chrono::milliseconds(absl::ToInt64Milliseconds(d));
}

// `cpus` says why the agent runs the workers it runs.
meshplug::agent::AgentOptions OptionsFromFlags(std::string& cpus) {
  meshplug::agent::AgentOptions o;
  o.bind_address = absl::GetFlag(FLAGS_bind_address);
  o.outbound_port = absl::GetFlag(FLAGS_outbound_port);
  o.inbound_port = absl::GetFlag(FLAGS_inbound_port);
  o.admin_address = absl::GetFlag(FLAGS_admin_address);
  o.admin_port = absl::GetFlag(FLAGS_admin_port);
  if (absl::GetFlag(FLAGS_workers) > 0) {
    o.workers = static_cast<size_t>(absl::GetFlag(FLAGS_workers));
    cpus = "set by --workers";
  } else {
    const meshplug::agent::CpuBudget budget = meshplug::agent::ReadCpuBudget();
    o.workers = budget.Workers();
    cpus = budget.ToString();
  }
  o.max_connections_per_listener = absl::GetFlag(FLAGS_max_connections_per_listener);
  o.limits.max_header_bytes = absl::GetFlag(FLAGS_max_header_bytes);
  o.limits.max_header_count = absl::GetFlag(FLAGS_max_header_count);
  o.limits.http2_max_concurrent_streams = absl::GetFlag(FLAGS_http2_max_concurrent_streams);
  o.limits.max_buffered_body_bytes = absl::GetFlag(FLAGS_max_buffered_body_bytes);
  o.limits.header_read_timeout = Ms(absl::GetFlag(FLAGS_header_read_timeout));
  o.limits.downstream_idle_timeout = Ms(absl::GetFlag(FLAGS_idle_timeout));
  o.limits.connect_timeout = Ms(absl::GetFlag(FLAGS_connect_timeout));
  o.limits.request_timeout = Ms(absl::GetFlag(FLAGS_request_timeout));
  o.limits.upstream_idle_timeout = Ms(absl::GetFlag(FLAGS_upstream_idle_timeout));
  o.drain_timeout = Ms(absl::GetFlag(FLAGS_drain_timeout));
  o.dns_port = absl::GetFlag(FLAGS_dns_port);
  return o;
}

// --dns_upstream, else the first nameserver of /etc/resolv.conf (none: mesh names only).
absl::Status DnsUpstreamFromFlags(meshplug::agent::AgentOptions& o) {
  if (o.dns_port == 0) return absl::OkStatus();
  const std::string given = absl::GetFlag(FLAGS_dns_upstream);
  if (!given.empty()) {
    boost::system::error_code ec;
    const auto ip = boost::asio::ip::make_address(given, ec);
    if (ec) return absl::InvalidArgumentError(meshplug::Cat("--dns_upstream: \"", given, "\" is not an IP address"));
    o.dns_upstream = boost::asio::ip::udp::endpoint(ip, 53);
    return absl::OkStatus();
  }
  auto resolv = meshplug::ReadFileText("/etc/resolv.conf", "/etc/resolv.conf");
  if (resolv.ok()) o.dns_upstream = meshplug::agent::dns::FirstNameserver(*resolv);
  return absl::OkStatus();
}

meshplug::plugins::lua::LuaLimits LuaLimitsFromFlags() {
  meshplug::plugins::lua::LuaLimits l;
  l.memory_bytes = absl::GetFlag(FLAGS_lua_memory_per_state_bytes);
  l.instructions_per_call = absl::GetFlag(FLAGS_lua_instructions_per_call);
  l.time_per_call = Ms(absl::GetFlag(FLAGS_lua_time_per_call));
  return l;
}

// SIGTERM/SIGINT: drain, then exit. Whatever holds a worker (nothing should: plugins run
// under budgets), the process ends shortly after the drain timeout.
void DrainOnSignal(meshplug::agent::Agent& agent) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  int sig = 0;
  sigwait(&set, &sig);
  std::fprintf(stderr, "agent: signal %d, draining\n", sig);
  agent.DrainAsync();
  if (!agent.WaitFor(agent.drain_timeout() + std::chrono::seconds(5))) {
    meshplug::log::Error("shutdown did not finish within the drain timeout and 5 s; exiting now");
    std::_Exit(1);
  }
}

using meshplug::Cat;
namespace log = meshplug::log;
namespace agent_ns = meshplug::agent;

// The bootstrap file overlaid with the identity flags; nullopt-equivalent (empty node id
// and xds address) when neither says anything about xDS.
absl::StatusOr<agent_ns::xds::Bootstrap> BootstrapFromFlags() {
  agent_ns::xds::Bootstrap b;
  if (std::string path = absl::GetFlag(FLAGS_bootstrap); !path.empty()) {
    auto file = agent_ns::xds::ReadBootstrapFile(path);
    if (!file.ok()) return file.status();
    b = *std::move(file);
  }
  agent_ns::xds::Bootstrap flags;
  flags.node_id = absl::GetFlag(FLAGS_node_id);
  flags.namespace_ = absl::GetFlag(FLAGS_namespace);
  auto labels = agent_ns::xds::ParseLabels(absl::GetFlag(FLAGS_labels));
  if (!labels.ok()) return absl::InvalidArgumentError(Cat("--labels: ", std::string(labels.status().message())));
  flags.labels = *labels;
  flags.service_account = absl::GetFlag(FLAGS_service_account);
  flags.address = absl::GetFlag(FLAGS_address);
  flags.inbound_port = absl::GetFlag(FLAGS_advertise_inbound_port);
  auto ports = agent_ns::xds::ParsePorts(absl::GetFlag(FLAGS_app_ports));
  if (!ports.ok()) return absl::InvalidArgumentError(Cat("--app_ports: ", std::string(ports.status().message())));
  flags.app_ports = *ports;
  flags.xds_address = absl::GetFlag(FLAGS_xds_address);
  flags.xds_protocol = absl::GetFlag(FLAGS_xds_protocol);
  flags.snapshot_cache = absl::GetFlag(FLAGS_snapshot_cache);
  flags.xds_ca_file = absl::GetFlag(FLAGS_xds_ca_file);
  flags.identity_file = absl::GetFlag(FLAGS_identity_file);
  if (const std::string path = absl::GetFlag(FLAGS_join_token_file); !path.empty()) {
    auto token = meshplug::ReadFileText(path, "--join_token_file");
    if (!token.ok()) return token.status();
    // The token is base64url and dots; whatever else the file holds (a final line break) is not.
    token->erase(std::remove_if(token->begin(), token->end(), [](unsigned char c) { return std::isspace(c); }),
                 token->end());
    flags.join_token = *token;
  }
  b.Override(flags);
  if (b.xds_ca.empty() && !b.xds_ca_file.empty()) {
    auto ca = meshplug::ReadFileText(b.xds_ca_file, "the CA file");
    if (!ca.ok()) return ca.status();
    b.xds_ca = *ca;
  }
  if (b.address.empty()) {
    const std::string bind = absl::GetFlag(FLAGS_bind_address);
    if (!meshplug::IsAnyAddress(bind)) b.address = bind;
  }
  return b;
}

// "<state dir>/agents/<namespace>.<name><suffix>".
std::string DefaultAgentFile(const agent_ns::xds::Bootstrap& b, const char* suffix) {
  return meshplug::DefaultStatePath(Cat("agents/", b.namespace_, ".", b.node_id, suffix));
}

// A setting's file or its default; "none" turns it off.
std::string FileSetting(const std::string& given, const agent_ns::xds::Bootstrap& b, const char* suffix) {
  return given.empty() ? DefaultAgentFile(b, suffix) : given == "none" ? "" : given;
}

// Where the control plane (and Prometheus, through its service discovery) reaches /stats:
// the admin listener's address, or the workload's when it listens on every address. A
// loopback address only when the control plane is on this machine too; "" otherwise.
std::string ReportedAdminAddress(const agent_ns::xds::Bootstrap& b, uint16_t admin_port) {
  std::string host = absl::GetFlag(FLAGS_admin_address);
  if (meshplug::IsAnyAddress(host)) host = b.address.empty() ? "127.0.0.1" : b.address;
  const std::string first_server = b.xds_address.substr(0, b.xds_address.find(','));
  const auto server = meshplug::SplitHostPort(first_server);
  if (meshplug::IsLoopback(host) && !meshplug::IsLoopback(server ? server->host : first_server)) {
    meshplug::log::Info("the admin listener is on loopback and the control plane elsewhere: /stats is not offered to "
              "Prometheus's discovery (--admin_address 0.0.0.0 offers it)");
    return "";
  }
  return host.find(':') == std::string::npos ? Cat(host, ":", admin_port) : Cat("[", host, "]:", admin_port);
}

agent_ns::xds::XdsClientOptions XdsOptions(const agent_ns::xds::Bootstrap& b, uint16_t inbound_port,
                                           uint16_t admin_port, bool have_snapshot) {
  agent_ns::xds::XdsClientOptions o;
  o.server_address = b.xds_address;
  o.protocol = b.xds_protocol == "sotw" ? agent_ns::xds::XdsProtocol::kSotw : agent_ns::xds::XdsProtocol::kDelta;
  o.node = agent_ns::xds::MakeNode(b, inbound_port, ReportedAdminAddress(b, admin_port));
  o.cache_path = FileSetting(b.snapshot_cache, b, ".snapshot.json");
  o.use_cache_at_start = !have_snapshot;
  o.initial_fetch_timeout = Ms(absl::GetFlag(FLAGS_xds_initial_fetch_timeout));
  o.backoff_base = Ms(absl::GetFlag(FLAGS_xds_backoff_base));
  o.backoff_max = Ms(absl::GetFlag(FLAGS_xds_backoff_max));
  o.connect_timeout = Ms(absl::GetFlag(FLAGS_xds_connect_timeout));
  o.timing.settle = Ms(absl::GetFlag(FLAGS_xds_settle));
  o.timing.incomplete_timeout = Ms(absl::GetFlag(FLAGS_xds_incomplete_timeout));
  o.timing.endpoints_warming = Ms(absl::GetFlag(FLAGS_xds_endpoints_warming_timeout));
  o.keepalive = Ms(absl::GetFlag(FLAGS_xds_keepalive));
  return o;
}

// --tls_cert_file, --tls_key_file and --tls_bundle_file: all three or none.
absl::Status UseCertificateFiles(agent_ns::Agent& agent) {
  const std::string files[] = {absl::GetFlag(FLAGS_tls_cert_file), absl::GetFlag(FLAGS_tls_key_file),
                               absl::GetFlag(FLAGS_tls_bundle_file)};
  const int given = !files[0].empty() + !files[1].empty() + !files[2].empty();
  if (given == 0) return absl::OkStatus();
  if (given != 3) return absl::InvalidArgumentError("--tls_cert_file, --tls_key_file and --tls_bundle_file go together");
  std::string pem[3];
  for (int i = 0; i < 3; ++i) {
    auto text = meshplug::ReadFileText(files[i], "the certificate file");
    if (!text.ok()) return text.status();
    pem[i] = *std::move(text);
  }
  return agent.SetWorkloadCertificate(pem[1], pem[0], pem[2]);
}

}  // namespace

int main(int argc, char** argv) {
  meshplug::DisableMutexDeadlockDetection();
  absl::SetProgramUsageMessage(
      "meshplug agent: --bootstrap FILE (or --node_id, --namespace, --xds_address, ...) to follow the "
      "control plane; --snapshot_file FILE to run on a fixed snapshot");
  absl::ParseCommandLine(argc, argv);
  log::SetComponent("agent");
  log::Level level;
  if (!log::ParseLevel(absl::GetFlag(FLAGS_log_level), &level)) {
    std::fprintf(stderr, "agent: --log_level must be debug, info, warn or error\n");
    return 1;
  }
  log::SetLevel(level);
  if (absl::GetFlag(FLAGS_http2_max_concurrent_streams) == 0) {
    // 0 in SETTINGS_MAX_CONCURRENT_STREAMS would refuse every HTTP/2 request.
    std::fprintf(stderr, "agent: --http2_max_concurrent_streams must be at least 1\n");
    return 1;
  }

  auto bootstrap = BootstrapFromFlags();
  if (!bootstrap.ok()) {
    std::fprintf(stderr, "agent: %s\n", std::string(bootstrap.status().message()).c_str());
    return 1;
  }
  const bool use_xds = !bootstrap->node_id.empty() || !bootstrap->xds_address.empty() ||
                       !absl::GetFlag(FLAGS_bootstrap).empty();
  const std::string snapshot_file = absl::GetFlag(FLAGS_snapshot_file);
  if (use_xds) {
    if (absl::Status valid = agent_ns::xds::Validate(*bootstrap); !valid.ok()) {
      std::fprintf(stderr, "agent: %s\n", std::string(valid.message()).c_str());
      return 1;
    }
  } else if (snapshot_file.empty()) {
    std::fprintf(stderr,
                 "agent: nothing to run: give --bootstrap FILE or --node_id/--namespace/--xds_address to "
                 "follow the control plane, or --snapshot_file FILE\n");
    return 1;
  }

  // Block the signals before any thread starts, so only the waiter receives them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  std::unique_ptr<agent_ns::chains::ScriptFactory> scripts = agent_ns::chains::MakeScriptRuntime(LuaLimitsFromFlags(), absl::GetFlag(FLAGS_lua_memory_total_bytes));
  std::string cpus;
  meshplug::agent::AgentOptions options = OptionsFromFlags(cpus);
  if (absl::Status st = DnsUpstreamFromFlags(options); !st.ok()) {
    std::fprintf(stderr, "agent: %s\n", std::string(st.message()).c_str());
    return 1;
  }
  meshplug::agent::Agent agent(std::move(options), nullptr, scripts.get());
  std::string token_file = absl::GetFlag(FLAGS_admin_token_file);
  if (token_file.empty()) {
    agent_ns::xds::Bootstrap anonymous;
    anonymous.namespace_ = "admin-token";
    anonymous.node_id = std::to_string(getpid());
    token_file = DefaultAgentFile(use_xds ? *bootstrap : anonymous, use_xds ? ".admin-token" : "");
  }
  if (absl::Status written = meshplug::WritePrivateFile(token_file, agent.admin_token() + "\n"); !written.ok()) {
    std::fprintf(stderr, "agent: %s\n", std::string(written.message()).c_str());
    return 1;
  }
  // Access log lines (the logging module, when MeshConfig's observability.accessLog is on)
  // go to stdout, one JSON object per line.
  agent.SetAccessLog([](std::string_view line) {
    static std::mutex mu;
    std::lock_guard lock(mu);
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
  });
  if (absl::Status st = UseCertificateFiles(agent); !st.ok()) {
    std::fprintf(stderr, "agent: %s\n", std::string(st.message()).c_str());
    return 1;
  }
  if (const std::string& path = snapshot_file; !path.empty()) {
    auto snapshot = meshplug::agent::ReadSnapshotFile(path);
    absl::Status applied = snapshot.ok() ? agent.Apply(*std::move(snapshot)).status() : snapshot.status();
    if (!applied.ok()) {
      std::fprintf(stderr, "agent: %s\n", applied.ToString().c_str());
      return 1;
    }
  }
  if (absl::Status started = agent.Start(); !started.ok()) {
    std::fprintf(stderr, "agent: %s\n", started.ToString().c_str());
    return 1;
  }
  std::printf("agent: listening outbound=%u inbound=%u admin=%u workers=%zu\n", agent.outbound_port(),
              agent.inbound_port(), agent.admin_port(), agent.workers());
  std::fflush(stdout);
  log::Info("listening", {{"outbound", std::to_string(agent.outbound_port())},
                          {"inbound", std::to_string(agent.inbound_port())},
                          {"admin", std::to_string(agent.admin_port())},
                          {"workers", std::to_string(agent.workers())},
                          {"cpus", cpus},
                          {"admin_token_file", token_file}});

  std::unique_ptr<agent_ns::xds::WorkloadIdentity> identity;
  std::unique_ptr<agent_ns::xds::XdsClient> xds;
  if (use_xds) {
    identity = std::make_unique<agent_ns::xds::WorkloadIdentity>(
        agent_ns::xds::WorkloadIdentity::Options{bootstrap->xds_address, bootstrap->xds_ca, bootstrap->join_token,
                                                 bootstrap->AgentId(),
                                                 FileSetting(bootstrap->identity_file, *bootstrap, ".identity.pem"),
                                                 Ms(absl::GetFlag(FLAGS_xds_connect_timeout))},
        &agent.stats());
    identity->OnCertificate([&agent](const agent_ns::xds::IdentityMaterial& m) {
      if (absl::Status st = agent.SetWorkloadCertificate(m.key_pem, m.chain_pem, m.bundle_pem, m.trusted_issuers);
          !st.ok()) {
        log::Error("the workload certificate cannot be used for mTLS", {{"error", std::string(st.message())}});
      }
    });
    identity->StartRenewal();
    agent_ns::xds::XdsClientOptions options = XdsOptions(*bootstrap, agent.inbound_port(), agent.admin_port(), !snapshot_file.empty());
    options.credentials = [&identity] { return identity->Credentials(); };
    options.servers = identity->servers();
    if (bootstrap->address.empty()) {
      log::Warn("no workload address (--address): peers cannot reach this workload through the mesh");
    }
    log::Info("following the control plane",
              {{"xds_address", options.server_address},
               {"protocol", options.protocol == agent_ns::xds::XdsProtocol::kDelta ? "delta" : "sotw"},
               {"agent", bootstrap->AgentId()},
               {"snapshot_cache", options.cache_path.empty() ? "none" : options.cache_path}});
    xds = std::make_unique<agent_ns::xds::XdsClient>(
        std::move(options),
        [&agent, &identity](meshplug::v1::Snapshot s) {
          meshplug::v1::TrustBundle trust = s.settings().trust();
          auto applied = agent.Apply(std::move(s));
          if (applied.ok()) identity->Trust(trust);
          return applied;
        },
        &agent.stats());
    xds->Start();
  }
  std::thread waiter([&] { DrainOnSignal(agent); });
  waiter.detach();
  agent.Wait();
  if (xds) xds->Stop();
  identity.reset();
  std::fprintf(stderr, "agent: stopped\n");
  return 0;
}
