// The agent's DNS server (UDP, on loopback): applications in an intercepted workload
// resolve mesh names — NAME.NAMESPACE, NAME.NAMESPACE.svc, NAME.NAMESPACE.svc.cluster.local,
// a bare NAME of their own namespace — to the Service's virtual address without any change;
// other names are relayed to the upstream resolver. Interception redirects the workload's
// DNS here (meshplug-intercept --dns_port).
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "common/stats.h"

namespace meshplug::agent::dns {

struct Answer {
  bool mesh_name = false;        // the mesh answers for this name (else: upstream)
  std::optional<uint32_t> ipv4;  // its address; none with mesh_name: NXDOMAIN
};
using Resolver = std::function<Answer(const std::string& name)>;

class DnsServer {
 public:
  // Listens on address:port (0: any free port) on `context`; `upstream` (may be unset)
  // gets what the mesh does not answer.
  static absl::StatusOr<std::unique_ptr<DnsServer>> Start(boost::asio::io_context& context, const std::string& address,
                                                          uint16_t port, Resolver resolve,
                                                          std::optional<boost::asio::ip::udp::endpoint> upstream,
                                                          Stats* stats);
  ~DnsServer();
  uint16_t port() const { return port_; }

 private:
  struct State;
  explicit DnsServer(std::shared_ptr<State> state, uint16_t port) : state_(std::move(state)), port_(port) {}
  std::shared_ptr<State> state_;
  uint16_t port_;
};

// The first nameserver of a resolv.conf text, port 53; nullopt if none.
std::optional<boost::asio::ip::udp::endpoint> FirstNameserver(const std::string& resolv_conf);

}  // namespace meshplug::agent::dns
