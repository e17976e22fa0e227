#include "agent/agent.h"

#include <algorithm>

#include "common/metric_help.h"
#include "common/secret.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstdio>
#include <future>

#include "net/accept_loop.h"
#include "net/http_server.h"
#include "agent/admin/admin.h"
#include "agent/cpu_budget.h"
#include "agent/proxy/tcp_proxy.h"
#include "net/original_dst.h"
#include "common/strings.h"

namespace meshplug::agent {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

Agent::Agent(AgentOptions options, std::unique_ptr<chains::BuiltinFactory> builtins,
             const chains::ScriptFactory* scripts)
    : options_(std::move(options)),
      builtins_(builtins ? std::move(builtins) : std::make_unique<chains::BuiltinModuleFactory>()),
      scripts_(scripts),
      builder_(*builtins_, scripts, builtin_state_, options_.limits),
      chains_(options_.limits) {
  if (options_.admin_token.empty()) options_.admin_token = SecretHex(32);
  const size_t n = options_.workers != 0 ? options_.workers : ReadCpuBudget().Workers();
  for (size_t i = 0; i < n; ++i) {
    auto worker = std::make_unique<Worker>();
    worker->pool = std::make_unique<net::UpstreamPool>(worker->context.get_executor());
    worker->h2_pool = std::make_unique<proxy::Http2UpstreamPool>(worker->context.get_executor());
    workers_.push_back(std::move(worker));
  }
}

Agent::~Agent() {
  Drain();
  if (drain_thread_.joinable()) drain_thread_.join();
}

absl::StatusOr<std::shared_ptr<Agent::Acceptor>> Agent::Listen(const std::string& address,
                                                              uint16_t port) {
  return net::Listen(control_, address, port);
}

Agent::Worker& Agent::NextWorker() {
  return *workers_[next_worker_.fetch_add(1, std::memory_order_relaxed) % workers_.size()];
}

absl::Status Agent::SetWorkloadCertificate(const std::string& key_pem, const std::string& chain_pem,
                                           const std::string& bundle_pem, std::vector<std::string> issuer_key_ids) {
  auto contexts = net::MakeTlsContexts(key_pem, chain_pem, bundle_pem, std::move(issuer_key_ids));
  if (!contexts.ok()) return contexts.status();
  tls_.Set(*std::move(contexts));
  return absl::OkStatus();
}

proxy::ProxyEnv Agent::EnvFor(Worker& worker, bool inbound) {
  return proxy::ProxyEnv{&chains_, worker.pool.get(), &stats_, inbound, &draining_, &in_flight_, &tls_,
                         worker.h2_pool.get(), &tap_};
}

std::string Agent::RenderStats() {
  {
    std::lock_guard lock(limits_mu_);
    for (const auto& [listener, limit] : connection_limits_) {
      stats_.SetGauge("meshplug_agent_connections_active", {{"listener", listener}}, static_cast<int64_t>(limit->active()));
    }
  }
  stats_.SetGauge("meshplug_agent_chain_sets_live", {}, chains::ChainSet::Live());
  stats_.SetGauge("meshplug_agent_chain_swaps", {}, static_cast<int64_t>(swaps()));
  stats_.SetGauge("meshplug_agent_taps_active", {}, tap_.subscribers());
  stats_.SetGauge("meshplug_agent_tap_summaries_dropped", {}, static_cast<int64_t>(tap_.dropped()));
  if (scripts_ != nullptr) scripts_->ExportStats(stats_);
  std::string out = stats_.RenderPrometheus();
  // The version in use, as an info metric: one series, for the active set only.
  if (std::shared_ptr<const chains::ChainSet> active = chains_.Get()) {
    out += Cat("# HELP meshplug_agent_snapshot_info ", MetricHelp("meshplug_agent_snapshot_info"),
               "\n# TYPE meshplug_agent_snapshot_info gauge\nmeshplug_agent_snapshot_info{version=",
               JsonQuote(active->version()), "} 1\n");
  }
  return out;
}

std::shared_ptr<net::ConnectionLimit> Agent::LimitFor(const std::string& listener) {
  std::lock_guard lock(limits_mu_);
  auto& limit = connection_limits_[listener];
  if (!limit) {
    const size_t max = listener == "admin" ? kAdminConnections
                       : options_.max_connections_per_listener != 0
                           ? options_.max_connections_per_listener
                           : net::ConnectionLimit::DefaultForProxyListener();
    limit = std::make_shared<net::ConnectionLimit>(listener, max, &stats_);
  }
  return limit;
}

void Agent::AcceptLoop(std::shared_ptr<Acceptor> acceptor, bool inbound, bool tcp) {
  const uint16_t port = acceptor->local_endpoint().port();
  const std::string listener = tcp ? Cat(inbound ? "inbound-tcp:" : "outbound-tcp:", port) : inbound ? "inbound" : "outbound";
  // The worker that takes the next connection, chosen as accept starts.
  auto next = std::make_shared<Worker*>(nullptr);
  auto pick = [this, next]() -> asio::io_context& {
    *next = &NextWorker();
    return (*next)->context;
  };
  auto serve = [this, next, inbound, tcp, port](tcp::socket socket, std::shared_ptr<void> slot) {
    Worker& worker = **next;
    // Intercepted (iptables sent it here): HTTP only to a mesh Service's HTTP port, else the
    // tcp chains, which route by the original destination.
    std::optional<tcp::endpoint> original;
    if (!tcp) original = net::OriginalDestination(socket);
    if (original && LoopsBack(*original)) {
      // The agent would be proxying to itself, or (inbound) someone outside is reaching
      // for the outbound listener.
      stats_.Count("meshplug_agent_connections_refused_total",
                   {{"listener", inbound ? "inbound" : "outbound"}, {"reason", "loop"}});
      return;
    }
    // One chain set decides both, the one current as the connection arrived.
    const std::shared_ptr<const chains::ChainSet> current = original || inbound ? chains_.Get() : nullptr;
    const bool as_tcp = tcp || (original && !IsHttpPort(current.get(), *original, inbound));
    if (inbound && as_tcp && (!current || current->snapshot().settings().mtls_mode() == v1::MTLS_STRICT)) {
      // Plaintext TCP from outside the mesh (intercepted, or on an inbound TCP listener):
      // strict mTLS refuses it, as it does HTTP; agents come through a tunnel.
      stats_.Count("meshplug_agent_connections_refused_total", {{"listener", "inbound"}, {"reason", "strict mtls"}});
      return;
    }
    auto connection = [](asio::awaitable<void> run, std::shared_ptr<void>) -> asio::awaitable<void> { co_await std::move(run); };
    proxy::TcpArrival arrival;
    arrival.listen_port = port;
    arrival.original = original;
    arrival.chains = current;
    asio::co_spawn(worker.context,
                   connection(as_tcp ? proxy::ServeTcpConnection(std::move(socket), EnvFor(worker, inbound), std::move(arrival))
                                     : proxy::ServeHttpConnection(std::move(socket), EnvFor(worker, inbound)),
                              std::move(slot)),
                   asio::detached);
  };
  asio::co_spawn(control_, net::AcceptConnections(acceptor, LimitFor(listener), pick, serve), asio::detached);
}

absl::Status Agent::Start() {
  auto outbound = Listen(options_.bind_address, options_.outbound_port);
  if (!outbound.ok()) return outbound.status();
  auto inbound = Listen(options_.bind_address, options_.inbound_port);
  if (!inbound.ok()) return inbound.status();
  auto admin = Listen(options_.admin_address, options_.admin_port);
  if (!admin.ok()) return admin.status();
  outbound_port_ = (*outbound)->local_endpoint().port();
  inbound_port_ = (*inbound)->local_endpoint().port();
  admin_port_ = (*admin)->local_endpoint().port();
  http_acceptors_ = {*outbound, *inbound};
  admin_acceptor_ = *admin;
  if (options_.dns_port != 0) {
    auto dns = dns::DnsServer::Start(
        control_, "127.0.0.1", options_.dns_port, [this](const std::string& name) { return ResolveMeshName(name); },
        options_.dns_upstream, &stats_);
    if (!dns.ok()) return dns.status();
    dns_ = *std::move(dns);
  }
  AcceptLoop(*outbound, false, false);
  AcceptLoop(*inbound, true, false);
  admin::ServeAdmin(control_, *admin, LimitFor("admin"), *this, options_.admin_token);
  for (auto& worker : workers_) {
    worker->thread = std::thread([&context = worker->context] {
      auto guard = asio::make_work_guard(context);
      context.run();
    });
  }
  control_thread_ = std::thread([this] {
    auto guard = asio::make_work_guard(control_);
    control_.run();
  });
  return absl::OkStatus();
}

bool Agent::LoopsBack(const tcp::endpoint& destination) const {
  const uint16_t p = destination.port();
  return (p == outbound_port_ || p == inbound_port_ || p == admin_port_) && net::IsLocalAddress(destination.address());
}

bool Agent::IsHttpPort(const chains::ChainSet* current, const tcp::endpoint& destination, bool inbound) {
  if (!current) return false;
  const auto port = current->mesh().FindOriginalPort(destination, inbound);
  return port && port->port->protocol() != v1::PROTOCOL_TCP;
}

dns::Answer Agent::ResolveMeshName(const std::string& name) const {
  if (const std::shared_ptr<const chains::ChainSet> current = chains_.Get()) {
    // Never a catch-all ("*") service: it would answer for every name on the Internet.
    if (const routing::ServiceView* service = current->mesh().FindNamedService(name, /*inbound=*/false)) {
      boost::system::error_code ec;
      const auto ip = asio::ip::make_address_v4(service->config->virtual_ip(), ec);
      return dns::Answer{true, ec ? std::nullopt : std::optional<uint32_t>(ip.to_uint())};
    }
  }
  // The cluster domain is the mesh's to answer, whether the Service exists or not.
  const bool cluster_name = name.ends_with(".svc") || name.ends_with(".svc.cluster.local");
  return dns::Answer{cluster_name, std::nullopt};
}

absl::StatusOr<std::vector<std::string>> Agent::Apply(v1::Snapshot snapshot) {
  std::lock_guard lock(apply_mu_);
  if (applies_closed_) return absl::UnavailableError("the agent is stopping");
  const std::shared_ptr<const chains::ChainSet> running = chains_.Get();
  absl::StatusOr<chains::BuiltChainSet> built = builder_.Build(std::move(snapshot), running.get());
  if (!built.ok()) return built.status();
  const std::shared_ptr<const chains::ChainSet>& next = built->chains;
  // Listeners are control-thread state; before Start() there is no control thread yet.
  auto on_control = [this](auto task) {
    if (!control_thread_.joinable()) return task();
    std::packaged_task<absl::Status()> packaged(std::move(task));
    std::future<absl::Status> done = packaged.get_future();
    asio::post(control_, [&packaged] { packaged(); });
    return done.get();
  };
  const routing::MeshView& mesh = next->mesh();
  if (absl::Status s = on_control([&] { return OpenTcpListeners(mesh); }); !s.ok()) return s;
  chains_.Swap(next);
  swaps_.fetch_add(1);
  if (absl::Status s = on_control([&] {
        CloseUnusedTcpListeners(mesh);
        return absl::OkStatus();
      });
      !s.ok()) {
    return s;
  }
  return std::move(built->isolated);
}

absl::Status Agent::OpenTcpListeners(const routing::MeshView& mesh) {
  std::vector<std::pair<std::pair<bool, uint16_t>, std::shared_ptr<Acceptor>>> opened;
  for (bool inbound : {false, true}) {
    for (const auto& [port, view] : mesh.tcp_ports(inbound)) {
      auto key = std::make_pair(inbound, static_cast<uint16_t>(port));
      if (tcp_acceptors_.contains(key)) continue;
      auto acceptor = Listen(options_.bind_address, key.second);
      if (!acceptor.ok()) {
        for (auto& [k, a] : opened) a->close();
        return absl::Status(acceptor.status().code(),
                            Cat("service ", view.service->config->name(), ": ",
                                std::string(acceptor.status().message())));
      }
      opened.emplace_back(key, *acceptor);
    }
  }
  for (auto& [key, acceptor] : opened) {
    tcp_acceptors_.emplace(key, acceptor);
    AcceptLoop(acceptor, key.first, true);
  }
  return absl::OkStatus();
}

void Agent::CloseUnusedTcpListeners(const routing::MeshView& mesh) {
  for (auto it = tcp_acceptors_.begin(); it != tcp_acceptors_.end();) {
    if (mesh.tcp_ports(it->first.first).contains(it->first.second)) {
      ++it;
      continue;
    }
    boost::system::error_code ec;
    it->second->close(ec);
    it = tcp_acceptors_.erase(it);
  }
}

void Agent::Drain() {
  std::call_once(drain_once_, [this] {
    draining_ = true;
    if (control_thread_.joinable()) {
      std::promise<void> closed;
      asio::post(control_, [this, &closed] {
        boost::system::error_code ec;
        // The admin acceptor stays open so /ready can report the drain.
        for (auto& acceptor : http_acceptors_) acceptor->close(ec);
        for (auto& [key, acceptor] : tcp_acceptors_) acceptor->close(ec);
        closed.set_value();
      });
      closed.get_future().wait();
      auto deadline = std::chrono::steady_clock::now() + options_.drain_timeout;
      // In-flight work ends on its own schedule; poll at a rate that is invisible next to
      // any drain timeout.
      while (in_flight_.load() > 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    Stop();
  });
}

void Agent::DrainAsync() {
  std::lock_guard lock(stopped_mu_);
  if (!drain_thread_.joinable()) drain_thread_ = std::thread([this] { Drain(); });
}

void Agent::Stop() {
  {
    // An Apply in progress finishes first (it waits on the control thread); later ones fail.
    std::lock_guard lock(apply_mu_);
    applies_closed_ = true;
  }
  control_.stop();
  for (auto& worker : workers_) worker->context.stop();
  if (control_thread_.joinable()) control_thread_.join();
  for (auto& worker : workers_) {
    if (worker->thread.joinable()) worker->thread.join();
  }
  std::lock_guard lock(stopped_mu_);
  stopped_ = true;
  stopped_cv_.notify_all();
}

void Agent::Wait() {
  std::unique_lock lock(stopped_mu_);
  stopped_cv_.wait(lock, [this] { return stopped_; });
}

bool Agent::WaitFor(std::chrono::milliseconds timeout) {
  std::unique_lock lock(stopped_mu_);
  return stopped_cv_.wait_for(lock, timeout, [this] { return stopped_; });
}

}  // namespace meshplug::agent
