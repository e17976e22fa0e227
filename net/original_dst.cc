#include "net/original_dst.h"

#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <boost/asio/ip/udp.hpp>

namespace meshplug::net {

namespace asio = boost::asio;
using asio::ip::tcp;

std::optional<tcp::endpoint> OriginalDestination(tcp::socket& socket) {
  boost::system::error_code ec;
  const tcp::endpoint local = socket.local_endpoint(ec);
  if (ec) return std::nullopt;
  sockaddr_storage original{};
  socklen_t len = sizeof original;
  const bool v6 = local.address().is_v6() && !local.address().to_v6().is_v4_mapped();
  const int rc = v6 ? getsockopt(socket.native_handle(), SOL_IPV6, IP6T_SO_ORIGINAL_DST, &original, &len)
                    : getsockopt(socket.native_handle(), SOL_IP, SO_ORIGINAL_DST, &original, &len);
  if (rc != 0) return std::nullopt;
  tcp::endpoint endpoint;
  if (original.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(original);
    endpoint = tcp::endpoint(asio::ip::address_v4(ntohl(in.sin_addr.s_addr)), ntohs(in.sin_port));
  } else if (original.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(original);
    asio::ip::address_v6::bytes_type bytes;
    std::copy(std::begin(in6.sin6_addr.s6_addr), std::end(in6.sin6_addr.s6_addr), bytes.begin());
    endpoint = tcp::endpoint(asio::ip::address_v6(bytes), ntohs(in6.sin6_port));
  } else {
    return std::nullopt;
  }
  // A listener on "::" sees IPv4 peers as v4-mapped addresses.
  auto plain = [](const tcp::endpoint& e) {
    const auto& a = e.address();
    return a.is_v6() && a.to_v6().is_v4_mapped()
               ? tcp::endpoint(asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6()), e.port())
               : e;
  };
  if (plain(endpoint) == plain(local)) return std::nullopt;
  return plain(endpoint);
}

bool IsLocalAddress(const asio::ip::address& address) {
  if (address.is_loopback()) return true;
  // Binding succeeds only to an address of this namespace.
  asio::io_context io;
  asio::ip::udp::socket probe(io);
  boost::system::error_code ec;
  probe.open(address.is_v6() ? asio::ip::udp::v6() : asio::ip::udp::v4(), ec);
  if (!ec) probe.bind(asio::ip::udp::endpoint(address, 0), ec);
  return !ec;
}

}  // namespace meshplug::net
