// The first step of a Beast read of an HTTP parser, done without the event loop: parsing
// what the buffer already holds. When that is enough, Beast's async read completes without
// reading the socket but still posts its completion through the event loop (one more turn
// of the loop, with its epoll_wait, per read); a request read after a keep-alive wait and a
// response body that came with its header are both parsed that way on every request.
#pragma once

#include <boost/beast/core/error.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>

namespace meshplug::net {

enum class ParseUntil {
  kHeaderDone,   // as http::async_read_header
  kMessageDone,  // as http::async_read
  kProgress,     // as http::async_read_some: any parsed bytes, or an error
};

// Parses the bytes `buffer` holds into `parser`, consuming what it used. Returns true when
// the read is complete without a socket read, with `ec` the parse's result (an error, or
// none); false when the parser needs more bytes (then the Beast read runs, and finds the
// rest of the buffer as it would have).
template <bool isRequest, typename DynamicBuffer>
bool ParseBuffered(boost::beast::http::basic_parser<isRequest>& parser, DynamicBuffer& buffer, ParseUntil until,
                   boost::beast::error_code& ec) {
  const auto done = [&] {
    return until == ParseUntil::kHeaderDone ? parser.is_header_done()
           : until == ParseUntil::kMessageDone ? parser.is_done()
                                               : false;
  };
  ec = {};
  if (done()) return true;
  if (buffer.size() == 0) return false;
  if (until != ParseUntil::kProgress) parser.eager(until == ParseUntil::kMessageDone);  // as Beast's reads do
  buffer.consume(parser.put(buffer.data(), ec));
  if (ec != boost::beast::http::error::need_more && (ec || until == ParseUntil::kProgress || done())) return true;
  ec = {};
  return false;
}

}  // namespace meshplug::net
