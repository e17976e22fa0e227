// meshplug control plane: the store, translation to per-agent snapshots, the xDS ADS
// server and the admin API, on one gRPC port.
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <boost/asio/io_context.hpp>

#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "common/log.h"
#include "common/deadlock_detection.h"
#include "common/secret.h"
#include "common/stats.h"
#include "common/strings.h"
#include "control_plane/api/admin_service.h"
#include "control_plane/api/dashboard.h"
#include "control_plane/api/http_pages.h"
#include "control_plane/api/resource_api.h"
#include "common/client_config.h"
#include "common/files.h"
#include "control_plane/controller/mesh_controller.h"
#include "control_plane/security/access.h"
#include "control_plane/security/certificate_authority.h"
#include "control_plane/security/identity_service.h"
#include "control_plane/security/server_tls.h"
#include "control_plane/security/tokens.h"
#include "control_plane/store/copy.h"
#include "control_plane/store/open.h"
#include "control_plane/xds/ads_service.h"
#include "control_plane/xds/shared_agent_status.h"
#include "net/connection_limit.h"
#include "net/http_server.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:15010", "address of the gRPC server (xDS and admin API)");
ABSL_FLAG(std::string, plaintext_xds_listen, "",
          "address of a plaintext xDS server for clients that cannot present a workload certificate (gRPC's "
          "xDS client): Envoy's resource types only, each stream authenticated by the xDS token in its node's "
          "metadata (meshctl bootstrap grpc); empty: none");
ABSL_FLAG(std::string, http_listen, "",
          "address of the HTTP pages: /metrics (open) and /http_sd, Prometheus service discovery of every agent's "
          "/stats (a read-only or admin token); off when empty");
ABSL_FLAG(bool, store_init, false,
          "start an empty mesh in --store when the file there is not a usable store (it is kept aside as "
          "<store>.damaged-<time>); a usable store is never replaced");
ABSL_FLAG(std::string, store, "",
          "SQLite database file (default: $MESHPLUG_HOME/store.db, else ~/.local/share/meshplug/store.db), or "
          "etcd://HOST:PORT[,HOST:PORT...] to share the mesh with other control-plane replicas");
ABSL_FLAG(std::string, copy_store_from, "",
          "copy the mesh in this store (an SQLite path or etcd://...) into --store, which must be empty, and exit; "
          "stop the control planes on both first");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warn or error");
ABSL_FLAG(int, debounce_ms, 100,
          "publish snapshots when no change came for this long (a change after as long a quiet spell at once)");
ABSL_FLAG(int, debounce_max_ms, 1000, "publish snapshots at the latest this long after a change");
ABSL_FLAG(int, agent_grace_s, 30, "a disconnected agent's endpoints stay this long");
ABSL_FLAG(int, keepalive_s, 60,
          "a client connection silent this long is sent a PING, and closed when none comes back within this long "
          "(at most 20 s); agents PING every 30 s (keep this above that), so only one that vanished without closing "
          "is ever asked; other idle clients answer one PING per this long");
ABSL_FLAG(std::string, ca_cert, "",
          "the operator's CA certificate (PEM, then its chain up to the self-signed root); default: the mesh's own "
          "CA, made on first start and kept in the store");
ABSL_FLAG(std::string, ca_key, "", "the key of --ca_cert (PEM)");
ABSL_FLAG(std::string, service_cidr, meshplug::control_plane::api::ServiceAddresses::kDefaultCidr,
          "the IPv4 range Services' virtual addresses (spec.clusterIP) come from");
ABSL_FLAG(std::vector<std::string>, tls_san, {},
          "more names (IP addresses or DNS names) agents and meshctl reach the control plane by, for its serving "
          "certificate (localhost, 127.0.0.1, ::1, the host name and the --listen host are always in it)");
ABSL_FLAG(std::string, client_config, "",
          "where to write meshctl's credentials (server, CA, admin token; mode 0600) at start (default: "
          "$MESHPLUG_HOME/config, else ~/.config/meshplug/config)");

namespace {

using meshplug::Cat;
namespace log = meshplug::log;

int Fail(const std::string& msg) {
  log::Error(msg);
  return 1;
}

// gRPC's own keepalive (a PING after two hours of silence) left an agent whose host
// vanished without closing connected, its endpoints in the mesh, for two hours. A PING
// after `keepalive` of silence instead: gRPC re-arms the timer on every frame it reads,
// an agent's own PINGs (every 30 s) included, so a live agent is never asked.
void ConfigureKeepalive(grpc::ServerBuilder& builder, std::chrono::milliseconds keepalive) {
  const int ms = static_cast<int>(keepalive.count());
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, ms);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, std::min(ms, 20000));
}

// SCHED_BATCH, for this thread and so for every thread it starts. A gRPC thread woken by a
// completion then no longer preempts the thread that publishes, which therefore pushes to
// many agents in one slice of the CPU instead of switching threads about ten times per
// agent when the core is busy (docs/benchmarks.md, issue 21, eleventh session). The price:
// a thread woken while the CPU is busy waits for the running one's time slice (a few
// milliseconds) before it runs.
void ScheduleAsBatch() {
  sched_param param{};
  if (sched_setscheduler(0, SCHED_BATCH, &param) != 0) {
    log::Warn("cannot use the batch scheduling policy", {{"error", std::strerror(errno)}});
  }
}

}  // namespace

int main(int argc, char** argv) {
  meshplug::DisableMutexDeadlockDetection();
  absl::SetProgramUsageMessage("meshplug control plane");
  absl::ParseCommandLine(argc, argv);
  log::SetComponent("control-plane");
  log::Level level;
  if (!log::ParseLevel(absl::GetFlag(FLAGS_log_level), &level)) {
    return Fail("--log_level must be debug, info, warn or error");
  }
  log::SetLevel(level);
  auto addresses = meshplug::control_plane::api::ServiceAddresses::Parse(absl::GetFlag(FLAGS_service_cidr));
  if (!addresses.ok()) return Fail(std::string(addresses.status().message()));
  const int keepalive_s = absl::GetFlag(FLAGS_keepalive_s);
  if (keepalive_s < 1 || keepalive_s > 7200) return Fail(Cat("--keepalive_s must be 1 to 7200, not ", keepalive_s));
  const std::chrono::milliseconds keepalive = std::chrono::seconds(keepalive_s);

  // Before any thread starts: all inherit the policy, and OpenSSL's configuration is
  // changed while nothing else uses it.
  ScheduleAsBatch();
  meshplug::control_plane::security::IssueNoSessionTickets();  // logs when it does not apply
  // Block the signals before any thread starts, so only the waiter below receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::string store_spec = absl::GetFlag(FLAGS_store);
  if (store_spec.empty()) store_spec = meshplug::DefaultStatePath("store.db");
  const bool etcd = store_spec.rfind("etcd:", 0) == 0;
  // This process's files (its serving certificate): beside an SQLite store, else in the
  // state directory.
  const std::string state_dir =
      std::filesystem::path(etcd ? meshplug::DefaultStatePath("store.db") : store_spec).parent_path().string();
  std::error_code ec;
  std::filesystem::create_directories(state_dir, ec);
  auto store = meshplug::control_plane::store::OpenStore(
      store_spec, {absl::GetFlag(FLAGS_store_init), [&](std::chrono::seconds delay) {
                     const timespec wait{delay.count(), 0};
                     return sigtimedwait(&signals, nullptr, &wait) < 0;  // a signal stops the waiting
                   }});
  if (!store.ok()) return Fail(std::string(store.status().message()));
  log::Info("store open", {{"store", (*store)->Describe()},
                           {"revision", std::to_string((*store)->Revision())}});
  if (const std::string from = absl::GetFlag(FLAGS_copy_store_from); !from.empty()) {
    auto source = meshplug::control_plane::store::OpenStore(from, {});
    if (!source.ok()) return Fail(Cat("--copy_store_from: ", source.status().message()));
    auto copied = meshplug::control_plane::store::CopyStore(**source, **store);
    if (!copied.ok()) return Fail(Cat("copying ", (*source)->Describe(), " into ", (*store)->Describe(), ": ",
                                      copied.status().message()));
    log::Info("mesh copied", {{"from", (*source)->Describe()}, {"to", (*store)->Describe()},
                              {"objects", std::to_string(copied->objects)}, {"commits", std::to_string(copied->commits)},
                              {"secrets", std::to_string(copied->secrets)}});
    return 0;
  }

  meshplug::control_plane::xds::SnapshotCache cache;
  meshplug::Stats stats;
  meshplug::control_plane::xds::AgentRegistry registry(&stats);
  // This process among the control planes sharing the store (in its live values).
  const std::string replica = meshplug::SecretHex(8);
  meshplug::control_plane::xds::SharedAgentStatus agents(**store, registry, replica);
  meshplug::control_plane::controller::MeshController controller(
      **store, cache, registry,
      {.quiet = std::chrono::milliseconds(absl::GetFlag(FLAGS_debounce_ms)),
       .max_delay = std::chrono::milliseconds(absl::GetFlag(FLAGS_debounce_max_ms)),
       .grace = std::chrono::seconds(absl::GetFlag(FLAGS_agent_grace_s)),
       .connected = [&agents] { return agents.Connected(); },
       .replica = replica});
  if (auto st = controller.Start(); !st.ok()) return Fail(std::string(st.message()));

  namespace security = meshplug::control_plane::security;
  auto tokens = security::TokenIssuer::Open(**store);
  if (!tokens.ok()) return Fail(std::string(tokens.status().message()));
  auto ca = security::CertificateAuthority::Open(**store, {absl::GetFlag(FLAGS_ca_cert), absl::GetFlag(FLAGS_ca_key)});
  if (!ca.ok()) return Fail(std::string(ca.status().message()));
  const security::Access access(**tokens, **ca, **store);
  const std::string listen = absl::GetFlag(FLAGS_listen);
  const std::string host = listen.substr(0, listen.rfind(':'));
  auto serving = security::ServingCertificate::Create(**ca, security::ServingNames(host, absl::GetFlag(FLAGS_tls_san)),
                                                      state_dir);
  if (!serving.ok()) return Fail(Cat("--tls_san: ", serving.status().message()));

  // meshctl's credentials: the address once the server listens, a fresh admin token each
  // start (earlier ones stay valid until they expire), and the mesh's roots — written again
  // after each CA rotation step.
  std::string config_path = absl::GetFlag(FLAGS_client_config);
  if (config_path.empty()) config_path = meshplug::DefaultClientConfigPath();
  const std::string admin_token =
      (*tokens)->Issue(security::Role::kAdmin, "control plane start", "", std::chrono::hours(24 * 366));
  std::string address;       // set once the server listens
  std::string http_address;  // set once the HTTP pages listen, if they do
  auto write_client_config = [&] {
    return meshplug::WriteClientConfig(config_path, {address, admin_token, (*ca)->trust_bundle(), http_address});
  };

  meshplug::control_plane::api::ResourceApi resources(**store, &controller.status(), *std::move(addresses));
  security::CaRotation ca_rotation(**ca, [&agents] { return agents.List(); }, cache, [&](meshplug::v1::TrustBundle trust) {
    // The serving certificate follows the current CA (a finished rotation's new one)
    // before agents learn to trust only that CA.
    if (auto st = (*serving)->Follow(address); !st.ok()) {
      log::Error("cannot renew the serving certificate", {{"error", std::string(st.message())}});
    }
    controller.SetTrust(std::move(trust));
    if (address.empty()) return;
    if (auto st = write_client_config(); !st.ok()) log::Error("cannot write meshctl's credentials", {{"error", std::string(st.message())}});
  });
  meshplug::control_plane::api::AdminService admin(**store, resources, cache, agents, access, **tokens, ca_rotation);
  meshplug::control_plane::xds::AdsService ads(cache, registry, controller, access);
  security::IdentityService identity(**store, **ca, access, **tokens, &registry);

  grpc::EnableDefaultHealthCheckService(true);
  // Its own server, so that nothing but ADS is reachable without TLS; before the admin API
  // serves, which tells xDS tokens where it is.
  std::optional<meshplug::control_plane::xds::AdsService> plaintext_ads;
  std::unique_ptr<grpc::Server> plaintext_server;
  if (const std::string plain = absl::GetFlag(FLAGS_plaintext_xds_listen); !plain.empty()) {
    grpc::ServerBuilder plain_builder;
    ConfigureKeepalive(plain_builder, keepalive);
    int plain_port = 0;
    plain_builder.AddListeningPort(plain, grpc::InsecureServerCredentials(), &plain_port);
    // A token is checked when a stream opens: connections end after 10 minutes (clients
    // reconnect and resume), so an expired token stops reading within that.
    plain_builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS, 10 * 60 * 1000);
    plain_builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, 10 * 1000);
    // No bandwidth-delay probing of what clients send (small ACKs): the first data after a
    // quiet spell started a PING round trip on the connection. Off, a change pushed to
    // 2,000 agents read about one message less and woke threads two times less per agent
    // (docs/benchmarks.md, issue 21, eleventh session). The receive window no longer grows
    // by the estimate; gRPC still opens it for a large message (an apply).
    plain_builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    plain_builder.RegisterService(&plaintext_ads.emplace(cache, registry, controller, access));
    plaintext_server = plain_builder.BuildAndStart();
    if (!plaintext_server || plain_port == 0) return Fail(Cat("--plaintext_xds_listen: cannot listen on ", plain));
    const std::string plain_host = plain.substr(0, plain.rfind(':'));
    const std::string plain_address = Cat(plain_host, ":", plain_port);
    admin.SetPlaintextXdsAddress(plain_address);
    log::Info("plaintext xds listening", {{"address", plain_address},
                                          {"serves", "Envoy's types to xDS-token holders"}});
  }
  grpc::ServerBuilder builder;
  ConfigureKeepalive(builder, keepalive);
  int port = 0;
  builder.AddListeningPort(listen, (*serving)->credentials(), &port);
  // Agents ping every 30 s to notice a control plane that vanished without closing. The
  // second also lets this server's keepalive PING a connection without a call (the
  // plaintext server's connections end after 10 minutes instead).
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);  // as on the plaintext server above
  // gRPC's TLS frame protector keeps a buffer of this size per connection (16 KB by
  // default) for the whole life of an agent's stream; responses are mostly small, and a
  // large one goes out as several records (docs/benchmarks.md, "Control-plane memory").
  builder.AddChannelArgument(GRPC_ARG_TSI_MAX_FRAME_SIZE, 4096);
  // An apply carries up to ManifestLimits::max_bytes_of_text of manifests; they are
  // checked against their limits with a clear error rather than cut off by gRPC.
  builder.SetMaxReceiveMessageSize(16 << 20);
  builder.RegisterService(&admin);
  builder.RegisterService(&ads);
  builder.RegisterService(&identity);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) return Fail(Cat("cannot listen on ", listen));
  // How this machine's clients (meshctl, the demo) reach a listener on every address.
  auto reachable = [](const std::string& h) { return meshplug::IsAnyAddress(h) ? std::string("127.0.0.1") : h; };
  address = Cat(reachable(host), ":", port);
  // The HTTP pages run on their own thread: a slow scraper never holds a gRPC thread.
  meshplug::control_plane::api::Dashboard dashboard([&agents] { return agents.List(); }, cache, resources);
  meshplug::control_plane::api::HttpPages pages(stats, registry, [&agents] { return agents.List(); }, access,
                                                &dashboard);
  boost::asio::io_context http_context;
  std::thread http_thread;
  // Whatever way main returns, the HTTP thread stops before what it uses goes.
  struct StopHttp {
    boost::asio::io_context& context;
    std::thread& thread;
    ~StopHttp() {
      context.stop();
      if (thread.joinable()) thread.join();
    }
  } stop_http{http_context, http_thread};
  if (const std::string http_listen = absl::GetFlag(FLAGS_http_listen); !http_listen.empty()) {
    auto acceptor = meshplug::net::ListenOn(http_context, http_listen, "--http_listen");
    if (!acceptor.ok()) return Fail(std::string(acceptor.status().message()));
    const auto bound = (*acceptor)->local_endpoint();
    meshplug::net::ServeHttp(http_context, *acceptor, std::make_shared<meshplug::net::ConnectionLimit>("http", 256),
                             [&pages](const meshplug::net::HttpRequest& req, const std::string& peer) {
                               return pages.Handle(req, peer);
                             });
    http_thread = std::thread([&http_context] { http_context.run(); });
    // With port 0 the kernel picks one; tests read it from this line.
    http_address = Cat(reachable(http_listen.substr(0, http_listen.rfind(':'))), ":", bound.port());
    log::Info("http listening", {{"address", http_address}, {"serves", "/ (dashboard) /api/mesh /metrics /http_sd"}});
  }

  if (auto st = write_client_config(); !st.ok()) return Fail(std::string(st.message()));
  agents.Start(address);
  // Rotation steps taken through another replica.
  if ((*store)->Shared()) ca_rotation.StartFollowing(std::chrono::seconds(1));
  // With port 0 the kernel picks one; tests read it from this line.
  log::Info("listening", {{"address", Cat(host, ":", port)}, {"serves", "xds,admin,identity (TLS)"},
                          {"credentials", config_path}});

  std::thread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    log::Info("shutting down", {{"signal", std::to_string(sig)}});
    http_context.stop();
    const auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(5);
    if (plaintext_server) plaintext_server->Shutdown(deadline);
    server->Shutdown(deadline);
  });
  server->Wait();
  waiter.join();
  ca_rotation.StopFollowing();
  controller.Stop();
  log::Info("stopped");
  return 0;
}
