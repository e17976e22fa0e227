// Where a request came from and where its response goes: an HTTP/1.1 connection or one
// stream of an HTTP/2 connection. The exchange (chains, upstream call, response relay)
// runs the same over either, so plugins see one API whatever the client speaks.
#pragma once

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/message.hpp>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "agent/proxy/relay.h"
#include "net/pending.h"
#include "net/upstream_pool.h"

namespace meshplug::agent::proxy {

class Downstream {
 public:
  virtual ~Downstream() = default;

  virtual boost::asio::any_io_executor executor() = 0;

  // The request body: whether it has been read to its end (or there is none), and its
  // length when the client declared one.
  virtual bool body_done() const = 0;
  virtual std::optional<uint64_t> body_length() const = 0;
  // The next non-empty piece into `out` (empty once the body has ended). Over HTTP/1.1 it
  // finishes at once when the body came with the header (net::Pending).
  virtual net::Pending ReadBody(std::string& out, boost::beast::error_code& ec) = 0;
  // Ends a pending ReadBody (it completes with an error).
  virtual void CancelRead() = 0;
  // Asks the client for the body it holds back (Expect: 100-continue).
  virtual boost::asio::awaitable<void> SendContinue(boost::beast::error_code& ec) = 0;

  // The response: a header, then body pieces. The header's hop-by-hop fields are not
  // sent; it must live until the call completes. `has_body`: a body follows; `length`:
  // its length when known. With `hold`, the header may wait for the first body piece and
  // go out with it. Over HTTP/1.1 both usually finish at once (net::Pending); `piece` must
  // live until SendBody has finished.
  virtual net::Pending SendHeader(const boost::beast::http::response_header<>& header, bool has_body,
                                  std::optional<uint64_t> length, bool hold, boost::beast::error_code& ec) = 0;
  // `last` ends the response.
  virtual net::Pending SendBody(std::string_view piece, bool last, boost::beast::error_code& ec) = 0;
  // Fields to end the response with, sent with the last SendBody: HTTP/2 as trailers (gRPC's
  // status), HTTP/1.1 in the last chunk of a chunked body (else they are dropped).
  virtual void SetTrailers(const boost::beast::http::fields& trailers) = 0;
  // Whether a header SendHeader held has not gone out yet (another response can still
  // replace it).
  virtual bool header_held() const = 0;
  // A whole response the agent made (hop-by-hop fields removed, framing set).
  virtual boost::asio::awaitable<void> SendWhole(boost::beast::http::response_header<> header, std::string_view body,
                                                 boost::beast::error_code& ec) = 0;
  // Runs `abandon` when the client gives up on the request (an HTTP/2 reset), so the upstream
  // is given up at once too rather than when it next sends; empty to stop.
  virtual void OnClientReset(std::function<void()> abandon) { (void)abandon; }
  // Nothing follows this response on the connection: HTTP/1.1 closes after it. (An
  // HTTP/2 stream always ends with its response, and is reset if the response did not.)
  virtual void EndAfterResponse() = 0;
  // A 101 to an Upgrade the request asked for (only HTTP/1.1 asks): SendSwitch sends its
  // header, then RelaySwitched relays the connection and `upstream` byte for byte until
  // they end.
  // By default (a protocol that never asks): operation_not_supported.
  virtual boost::asio::awaitable<void> SendSwitch(boost::beast::http::response_header<> header,
                                                  boost::beast::error_code& ec);
  virtual boost::asio::awaitable<RelayEnd> RelaySwitched(net::UpstreamConnection& upstream, RelayTimeouts timeouts);
};

inline boost::asio::awaitable<void> Downstream::SendSwitch(boost::beast::http::response_header<>,
                                                          boost::beast::error_code& ec) {
  ec = boost::asio::error::operation_not_supported;
  co_return;
}

inline boost::asio::awaitable<RelayEnd> Downstream::RelaySwitched(net::UpstreamConnection&, RelayTimeouts) {
  co_return RelayEnd::kEnded;
}

}  // namespace meshplug::agent::proxy
