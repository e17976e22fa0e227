// The fields that belong to one hop of a message's way, which HTTP/1.1 and HTTP/2
// senders alike leave out.
#pragma once

#include <boost/beast/http/field.hpp>

namespace meshplug::agent::proxy {

namespace http = boost::beast::http;

// The fixed hop-by-hop fields, never sent on as they came: Connection, Keep-Alive,
// Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade. Content-Length is not one;
// the sender re-frames the body. A switch: it is asked for every field sent on.
inline bool HopByHop(http::field f) {
  switch (f) {
    case http::field::connection:
    case http::field::keep_alive:
    case http::field::proxy_connection:
    case http::field::te:
    case http::field::trailer:
    case http::field::transfer_encoding:
    case http::field::upgrade:
      return true;
    default:
      return false;
  }
}

}  // namespace meshplug::agent::proxy
