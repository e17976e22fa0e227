// The admin endpoint: /config_dump, /stats, /ready, /clusters, /quitquitquit.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <memory>
#include <string>

namespace meshplug::agent {

class Agent;
class ChainSet;

// Serves admin requests from `acceptor` on `context` until the acceptor closes.
void ServeAdmin(boost::asio::io_context& context,
                std::shared_ptr<boost::asio::ip::tcp::acceptor> acceptor, Agent& agent);

// The /config_dump document of the active set: meshplug::ConfigDumpJson of its snapshot,
// the same bytes `meshctl proxy config_dump` prints for the same snapshot.
std::string ConfigDump(const ChainSet& chains);

}  // namespace meshplug::agent
