// The admin endpoint: /config_dump, /stats, /ready, /clusters, /tap, /quitquitquit. It
// listens on loopback by default; /config_dump (PluginConfig values), /tap (request paths)
// and /quitquitquit also need `Authorization: Bearer <admin token>`, which plugins cannot
// read, so an `http_call` to an admin port gets nothing sensitive and stops nothing.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <memory>
#include <string>

#include "agent/chains/chain_set.h"
#include "agent/proxy/tap.h"
#include "net/connection_limit.h"

namespace meshplug::agent::admin {

// What the endpoint shows and controls; the agent implements it.
class AdminTarget {
 public:
  virtual ~AdminTarget() = default;
  // nullptr until the first snapshot is applied.
  virtual std::shared_ptr<const chains::ChainSet> ActiveChainSet() const = 0;
  // Every metric of the process, in the Prometheus text format.
  virtual std::string RenderStats() = 0;
  virtual bool draining() const = 0;
  // Starts a graceful drain and returns.
  virtual void DrainAsync() = 0;
  // Where requests publish their summaries for /tap.
  virtual proxy::TapHub& tap() = 0;
};

// Serves admin requests from `acceptor` on `context` until the acceptor closes.
// At most `limit` connections are served at once.
void ServeAdmin(boost::asio::io_context& context, std::shared_ptr<boost::asio::ip::tcp::acceptor> acceptor,
                std::shared_ptr<net::ConnectionLimit> limit, AdminTarget& target, std::string token);

// The /config_dump document of a chain set: meshplug::ConfigDumpJson of its snapshot,
// the same bytes `meshctl proxy config_dump` prints for the same snapshot.
std::string ConfigDump(const chains::ChainSet& chains);

}  // namespace meshplug::agent::admin
