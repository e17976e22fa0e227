// MeshView: one snapshot's services, routes, clusters and endpoints, indexed for the
// lookups the built-in modules and the agent's forwarder make per request.
//
// Immutable once built, except the load balancers' state (atomics, and the weighted round
// robin's current weights under a mutex), so one MeshView is shared by every worker
// thread through the chain set that owns it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "absl/status/statusor.h"
#include "meshplug/v1/snapshot.pb.h"
#include "agent/routing/load_balancer.h"
#include "plugins/api/plugin.h"

namespace re2 {
class RE2;
}

namespace meshplug::agent::routing {

namespace v1 = ::meshplug::v1;

// Limits MeshView::Build enforces on snapshot numbers.
inline constexpr uint32_t kMaxPort = 65535;

struct ClusterView {
  v1::Cluster config;
  std::unique_ptr<LoadBalancer> lb;
};

// A route with its regexes compiled (RE2: linear-time matching, no backtracking).
struct RouteView {
  const v1::HttpRoute* config = nullptr;
  std::shared_ptr<const re2::RE2> path_regex;
  std::vector<std::shared_ptr<const re2::RE2>> header_regexes;  // one per match.headers entry
};

struct ServiceView {
  const v1::Service* config = nullptr;
  std::vector<RouteView> routes;
};

// A service port: one that one of the agent's TCP listeners serves, or the one a
// connection to the service's virtual address was for.
struct TcpPortView {
  const ServiceView* service = nullptr;
  const v1::ServicePort* port = nullptr;
};

// The result of routing one request.
struct RouteChoice {
  const ServiceView* service = nullptr;
  const RouteView* route = nullptr;  // nullptr: the service matched, no route did
};

// Points `target` at `endpoint` of its cluster: address, port and workload.
inline void SetEndpoint(plugins::UpstreamTarget& target, const v1::Endpoint& endpoint) {
  target.host = endpoint.address();
  target.port = static_cast<uint16_t>(endpoint.port());
  target.workload = endpoint.workload();
}

// Routing tables of one snapshot. Services are per direction: an agent's own service is
// both a destination (outbound) and what its inbound chain serves, with different routes
// and configs. As a ServiceResolver it sends a plugin's calls to mesh names (outbound).
class MeshView final : public plugins::ServiceResolver {
 public:
  // Fails when a route names a cluster that does not exist, a regex does not compile
  // (RE2 syntax), two routes of a service share a name, or a number is out of range
  // (ports above 65535, endpoint port 0, more than 10 retries, a fault out of bounds).
  static absl::StatusOr<std::shared_ptr<const MeshView>> Build(
      std::shared_ptr<const v1::Snapshot> snapshot);

  const v1::Snapshot& snapshot() const { return *snapshot_; }

  // The service selected by a Host header among inbound or outbound services. A bare name
  // ("httpbin", "httpbin:14001") means that service in this workload's own namespace.
  const ServiceView* FindService(std::string_view host, bool inbound) const;
  // The same without the catch-all ("*") service: only a host a service lists (or a bare
  // name of this workload's namespace). What DNS answers for.
  const ServiceView* FindNamedService(std::string_view host, bool inbound) const;
  // The service and first matching route of a request. The path is matched normalized
  // (NormalizeOriginForm); a target that cannot be normalized matches no route.
  RouteChoice Route(const plugins::http::request_header<>& request, bool inbound) const;
  const ServiceView* FindServiceByName(std::string_view name, bool inbound) const;
  // The route `route` of the service `service` (names as HttpContext holds them).
  const v1::HttpRoute* FindRoute(std::string_view service, std::string_view route, bool inbound) const;
  // PluginConfig values of the services of one direction (HttpContext::configs).
  const plugins::PluginConfigs& configs(bool inbound) const { return configs_[inbound]; }
  // The TCP service port served on the agent's `listen_port` (ServicePort.tcp_listen_port).
  std::optional<TcpPortView> FindTcpPort(uint32_t listen_port, bool inbound) const;
  const std::map<uint32_t, TcpPortView>& tcp_ports(bool inbound) const {
    return tcp_ports_[inbound];
  }
  // Port `port` of the service named `service` ("name.namespace").
  std::optional<TcpPortView> FindServicePort(std::string_view service, uint32_t port, bool inbound) const;
  // The outbound service port whose virtual address and port (Service.virtual_ip) an
  // intercepted connection was sent to.
  std::optional<TcpPortView> FindVirtualPort(const boost::asio::ip::address& ip, uint32_t port) const;
  // This workload's own service port whose app port (target_port) an intercepted inbound
  // connection was sent to.
  std::optional<TcpPortView> FindAppPort(uint32_t target_port) const;
  // The service port an intercepted connection was sent to: inbound by app port, outbound
  // by virtual address and port.
  std::optional<TcpPortView> FindOriginalPort(const boost::asio::ip::tcp::endpoint& original, bool inbound) const;
  const ClusterView* FindCluster(std::string_view name) const;
  const std::map<std::string, ClusterView, std::less<>>& clusters() const { return clusters_; }

  // An endpoint of the outbound service `host_port` names, for the route its port takes.
  std::optional<plugins::UpstreamTarget> Resolve(std::string_view host_port) const override;

 private:
  class DirectionConfigs final : public plugins::PluginConfigs {
   public:
    DirectionConfigs(const MeshView& view, bool inbound) : view_(view), inbound_(inbound) {}
    const google::protobuf::Struct* Find(std::string_view service,
                                         std::string_view plugin) const override;

   private:
    const MeshView& view_;
    const bool inbound_;
  };

  explicit MeshView(std::shared_ptr<const v1::Snapshot> snapshot);
  absl::Status Index();

  std::shared_ptr<const v1::Snapshot> snapshot_;
  // Name → service, and lower-cased host → service; one map per direction (0 outbound,
  // 1 inbound).
  std::map<std::string, ServiceView, std::less<>> services_[2];
  std::map<std::string, const ServiceView*, std::less<>> hosts_[2];
  std::map<uint32_t, TcpPortView> tcp_ports_[2];
  std::map<std::pair<uint32_t, uint32_t>, TcpPortView> virtual_ports_;  // (IPv4, port) of outbound services
  std::map<uint32_t, TcpPortView> app_ports_;                       // target ports of inbound services
  std::map<std::string, ClusterView, std::less<>> clusters_;
  const DirectionConfigs configs_[2] = {{*this, false}, {*this, true}};
};

// Picks one of `clusters` by weight with a uniformly distributed `ticket` (reduced modulo
// the total weight). Returns nullptr when all weights are 0.
const std::string* PickWeighted(const google::protobuf::RepeatedPtrField<v1::WeightedCluster>&
                                    clusters,
                                uint64_t ticket);
// The sum of the weights, in 64 bits so that it cannot wrap.
uint64_t TotalWeight(const google::protobuf::RepeatedPtrField<v1::WeightedCluster>& clusters);

// A proto Duration, or `fallback` when unset.
std::chrono::milliseconds DurationOr(const google::protobuf::Duration& d, bool has,
                                     std::chrono::milliseconds fallback);

}  // namespace meshplug::agent::routing
