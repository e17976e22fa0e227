// Where an intercepted connection was going: iptables' REDIRECT rewrites the destination
// to the agent's listener and keeps the original for the receiver to ask for.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <optional>

namespace meshplug::net {

// The destination before the redirect (SO_ORIGINAL_DST, IP6T_SO_ORIGINAL_DST); nullopt
// when the connection was not redirected (it came to the listener's own address).
std::optional<boost::asio::ip::tcp::endpoint> OriginalDestination(boost::asio::ip::tcp::socket& socket);

// Whether `address` is one of this network namespace's own (loopback included).
bool IsLocalAddress(const boost::asio::ip::address& address);

}  // namespace meshplug::net
