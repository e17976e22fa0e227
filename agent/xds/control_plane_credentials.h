// How the agent's calls reach the control plane (grpc_call.h).
#pragma once

#include <memory>
#include <string>

namespace boost::asio::ssl {
class context;
}

namespace meshplug::agent::xds {

struct ControlPlaneCredentials {
  // TLS that verifies the control plane's certificate, which must name the host of the
  // address called (net::ServerVerifyingContext); null: plaintext, for tests of the
  // protocol alone.
  std::shared_ptr<boost::asio::ssl::context> tls;
  std::string bearer_token;  // sent as "authorization: Bearer <token>" when set
};

}  // namespace meshplug::agent::xds
