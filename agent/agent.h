// The agent: worker threads, the outbound/inbound/admin listeners, TCP listeners from the
// snapshot, the active chain set and graceful drain.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "agent/admin/admin.h"
#include "agent/chains/chain_set.h"
#include "agent/dns/dns_server.h"
#include "agent/proxy/http2_upstream.h"
#include "agent/proxy/http_proxy.h"
#include "common/stats.h"
#include "meshplug/v1/snapshot.pb.h"
#include "net/connection_limit.h"
#include "net/upstream_pool.h"
#include "plugins/builtin/state.h"

namespace meshplug::agent {

struct AgentOptions {
  std::string bind_address = "0.0.0.0";  // outbound, inbound and TCP listeners
  uint16_t outbound_port = 15001;
  uint16_t inbound_port = 15003;
  std::string admin_address = "127.0.0.1";
  uint16_t admin_port = 15000;
  size_t workers = 0;  // 0: one per CPU the agent may use (cpu_budget.h)
  // Connections each proxy listener holds at once; beyond it new ones are closed as they
  // arrive (counted). 0: net::ConnectionLimit::DefaultForProxyListener(), from the
  // descriptor limit, so the admin listener stays reachable.
  size_t max_connections_per_listener = 0;
  proxy::Limits limits;
  std::chrono::milliseconds drain_timeout{10'000};
  // The DNS server for mesh names on 127.0.0.1 (for intercepted workloads; 0: none), and
  // where other names go.
  uint16_t dns_port = 0;
  std::optional<boost::asio::ip::udp::endpoint> dns_upstream;
  // The bearer token the admin endpoint requires for /config_dump (it holds PluginConfig
  // values) and /quitquitquit; empty: a random one (admin_token()).
  std::string admin_token;
};

class Agent final : public admin::AdminTarget {
 public:
  // `builtins` defaults to the modules of plugins/builtin; `scripts` may be null (no Lua
  // runtime).
  explicit Agent(AgentOptions options, std::unique_ptr<chains::BuiltinFactory> builtins = nullptr,
                 const chains::ScriptFactory* scripts = nullptr);
  ~Agent() override;
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Binds the listeners and starts the threads.
  absl::Status Start();

  // Builds a chain set from `snapshot` and swaps it in; on error the old set keeps
  // running and the error says what failed. A script plugin that does not load fails only
  // itself (chains::BuiltChainSet::isolated): the set is swapped in and the returned lines
  // say what was isolated. Opens and closes the snapshot's TCP listeners. Thread-safe (one
  // at a time); fails once the agent is stopping.
  absl::StatusOr<std::vector<std::string>> Apply(v1::Snapshot snapshot);

  // Stops accepting, lets in-flight requests finish within the drain timeout, then stops
  // every thread. Safe to call from any thread but a worker's, and more than once.
  void Drain();
  // Drain() on a thread of its own (for /quitquitquit).
  void DrainAsync() override;
  // Blocks until the agent has stopped.
  void Wait();
  // The same for at most `timeout`; false when it has not stopped by then.
  bool WaitFor(std::chrono::milliseconds timeout);
  std::chrono::milliseconds drain_timeout() const { return options_.drain_timeout; }

  uint16_t outbound_port() const { return outbound_port_; }
  uint16_t inbound_port() const { return inbound_port_; }
  uint16_t admin_port() const { return admin_port_; }
  size_t workers() const { return workers_.size(); }
  const std::string& admin_token() const { return options_.admin_token; }

  const chains::ActiveChainSet& chains() const { return chains_; }
  std::shared_ptr<const chains::ChainSet> ActiveChainSet() const override { return chains_.Get(); }
  // The agent's metrics, with the script runtime's and the snapshot in use.
  std::string RenderStats() override;
  Stats& stats() { return stats_; }
  proxy::TapHub& tap() override { return tap_; }

  // The workload's certificate for mTLS with other agents: new connections use it,
  // connections already open keep theirs. Until the first one, inbound TLS hellos are
  // refused and connections to other agents are plaintext. `issuer_key_ids`: the mesh
  // CAs a peer's certificate may come from (empty: the one that issued ours).
  absl::Status SetWorkloadCertificate(const std::string& key_pem, const std::string& chain_pem,
                                      const std::string& bundle_pem, std::vector<std::string> issuer_key_ids = {});
  // Where the logging module writes access log lines (one JSON object each, no newline).
  void SetAccessLog(std::function<void(std::string_view)> sink) { builtin_state_.access_log = std::move(sink); }
  uint64_t swaps() const { return swaps_.load(); }
  bool draining() const override { return draining_.load(); }

 private:
  struct Worker {
    boost::asio::io_context context{1};
    std::unique_ptr<net::UpstreamPool> pool;
    std::unique_ptr<proxy::Http2UpstreamPool> h2_pool;
    std::thread thread;
  };
  using Acceptor = boost::asio::ip::tcp::acceptor;

  absl::StatusOr<std::shared_ptr<Acceptor>> Listen(const std::string& address, uint16_t port);
  // Accepts on the control thread and hands each connection to the next worker.
  void AcceptLoop(std::shared_ptr<Acceptor> acceptor, bool inbound, bool tcp);
  // The connection limit of a listener ("outbound", "inbound", "inbound-tcp:9000", "admin").
  std::shared_ptr<net::ConnectionLimit> LimitFor(const std::string& listener);
  static constexpr size_t kAdminConnections = 32;
  Worker& NextWorker();
  proxy::ProxyEnv EnvFor(Worker& worker, bool inbound);
  // An intercepted connection's original destination is this agent's own listener.
  bool LoopsBack(const boost::asio::ip::tcp::endpoint& destination) const;
  // It is an HTTP port in `current`: of a mesh Service's virtual address (outbound), or of
  // this workload's own service (inbound, by app port).
  static bool IsHttpPort(const chains::ChainSet* current, const boost::asio::ip::tcp::endpoint& destination,
                         bool inbound);
  // What the DNS server answers for `name`: a mesh Service's virtual address.
  dns::Answer ResolveMeshName(const std::string& name) const;
  // Opens the TCP listeners `mesh` needs that are not open yet; on the control thread.
  absl::Status OpenTcpListeners(const routing::MeshView& mesh);
  void CloseUnusedTcpListeners(const routing::MeshView& mesh);
  void Stop();

  AgentOptions options_;
  std::unique_ptr<chains::BuiltinFactory> builtins_;
  Stats stats_;
  proxy::TapHub tap_;
  net::TlsCredentials tls_;
  plugins::builtin::BuiltinState builtin_state_{stats_};
  const chains::ScriptFactory* scripts_;
  chains::ChainSetBuilder builder_;
  chains::ActiveChainSet chains_;
  std::mutex apply_mu_;  // one Apply at a time
  bool applies_closed_ = false;  // under apply_mu_: stopping, Apply refuses
  std::atomic<uint64_t> swaps_{0};

  // Before control_: a pending accept on control_ holds a socket of a worker's context,
  // so control_ must be destroyed first.
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<size_t> next_worker_{0};
  boost::asio::io_context control_{1};  // acceptors and admin
  std::thread control_thread_;
  std::vector<std::shared_ptr<Acceptor>> http_acceptors_;  // outbound, inbound
  std::shared_ptr<Acceptor> admin_acceptor_;
  std::unique_ptr<dns::DnsServer> dns_;  // on the control thread
  std::map<std::pair<bool, uint16_t>, std::shared_ptr<Acceptor>> tcp_acceptors_;  // control thread
  uint16_t outbound_port_ = 0, inbound_port_ = 0, admin_port_ = 0;

  std::mutex limits_mu_;
  std::map<std::string, std::shared_ptr<net::ConnectionLimit>> connection_limits_;  // under limits_mu_

  std::atomic<bool> draining_{false};
  std::atomic<int64_t> in_flight_{0};
  std::once_flag drain_once_;
  std::thread drain_thread_;
  std::mutex stopped_mu_;
  std::condition_variable stopped_cv_;
  bool stopped_ = false;
};

}  // namespace meshplug::agent
