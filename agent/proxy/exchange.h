// One request from its header to the end of its response, whatever the client speaks: the
// http chain's request steps, the upstream call with retries (the body streamed up by a
// pump while the response is read), the response steps, and the response relayed down.
#pragma once

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/message.hpp>
#include <memory>
#include <string>

#include "agent/chains/chain_set.h"
#include "agent/proxy/downstream.h"
#include "agent/proxy/http_proxy.h"

namespace meshplug::agent::proxy {

struct ExchangeStart {
  // The set current when the request arrived: it runs on it, limits included.
  std::shared_ptr<const chains::ChainSet> chains;
  boost::beast::http::request_header<> request;  // checked and normalized
  std::string peer_identity;  // the client's SPIFFE ID on an mTLS connection
  // The client asked to switch protocols (Upgrade, no body): a 101 from the upstream turns
  // the connection into a byte relay.
  bool upgrade_asked = false;
};

boost::asio::awaitable<void> ServeExchange(const ProxyEnv& env, Downstream& downstream, ExchangeStart start);

}  // namespace meshplug::agent::proxy
