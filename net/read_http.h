// Reads of an HTTP/1.1 parser from a stream, in place of Beast's http::async_read_header,
// async_read and async_read_some, with their results and errors, and two differences:
//
// - Bytes the buffer already holds are parsed at once. A Beast read that needs no socket
//   read still posts its completion through the event loop (one more turn of the loop,
//   with its epoll_wait); a request after a keep-alive wait and a response body that came
//   with its header are both parsed that way on every request. Beast's composed
//   operations (three layers per read, each with its executor work guard) are gone too.
// - Framing lines must end in CRLF. Beast's parser does not fail on a bare LF in a header,
//   a chunk-size line or a trailer: it waits for a CR that never comes, so a peer holds
//   the connection (and the request already sent upstream) until a timeout. A read fails
//   with bad_line_ending instead. Why the check is sound: the socket is read only when the
//   parser needs more bytes, and then what the buffer still holds is framing not yet
//   complete; body bytes are always handed out before a read. So a bare LF among those
//   bytes is a framing error, and one in a body never is. Only bytes not yet checked are
//   scanned: a peer sending a header a byte at a time costs no rescans.
#pragma once

#include <utility>  // before Asio 1.74's awaitable.hpp, which uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/read_size.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>

#include "net/pending.h"

namespace meshplug::net {

enum class ParseUntil {
  kHeaderDone,   // as http::async_read_header
  kMessageDone,  // as http::async_read
  kProgress,     // as http::async_read_some: any parsed bytes, or an error
};

// Whether a parsed response is an interim one (1xx) that the final one follows: all but
// 101, which is final. A reader of a response reads again while it is.
template <typename Parser>
bool InterimResponse(const Parser& response) {
  const unsigned status = response.get().result_int();
  return status / 100 == 1 && status != 101;
}

// Whether `bytes` hold an LF not preceded by CR at or after offset `from`.
inline bool HasBareLf(boost::asio::const_buffer bytes, size_t from = 0) {
  const char* const begin = static_cast<const char*>(bytes.data());
  const char* const end = begin + bytes.size();
  for (const char* p = begin + from; p < end;) {
    const char* lf = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
    if (lf == nullptr) return false;
    if (lf == begin || lf[-1] != '\r') return true;
    p = lf + 1;
  }
  return false;
}

// Parses the bytes `buffer` holds into `parser`, consuming what it used. Returns true when
// the read is complete without a socket read, with `ec` the parse's result (an error, or
// none); false when the parser needs more bytes.
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

namespace detail {

// The socket reads of StartReadHttp, after a parse of what `buffer` held fell short.
template <typename AsyncStream, bool isRequest, typename DynamicBuffer>
boost::asio::awaitable<void> ReadHttpMore(AsyncStream& stream, DynamicBuffer& buffer,
                                          boost::beast::http::basic_parser<isRequest>& parser, ParseUntil until,
                                          std::optional<std::chrono::milliseconds> timeout,
                                          boost::beast::error_code& ec) {
  namespace http = boost::beast::http;
  size_t checked = 0;  // bytes at the start of the buffer already found free of bare LFs
  while (true) {
    if (buffer.size() >= buffer.max_size()) {
      ec = http::error::buffer_overflow;
      co_return;
    }
    if (HasBareLf(buffer.data(), checked)) {
      ec = http::error::bad_line_ending;
      co_return;
    }
    checked = buffer.size();
    // As Beast's reads: what the buffer may still take, 512 bytes at least, 64 KB at most.
    const size_t size = boost::beast::read_size(buffer, 65536);
    if (timeout) {
      stream.expires_after(*timeout);
      timeout.reset();
    }
    const size_t n = co_await stream.async_read_some(buffer.prepare(size),
                                                     boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    buffer.commit(n);
    if (ec == boost::asio::error::eof) {
      // A message that ends with the connection (a response without a length) is whole;
      // anything else cut short is partial_message, and nothing at all end_of_stream.
      if (!parser.got_some()) {
        ec = http::error::end_of_stream;
        co_return;
      }
      ec = {};
      parser.put_eof(ec);
      co_return;
    }
    if (ec) co_return;
    const size_t held = buffer.size();
    if (ParseBuffered(parser, buffer, until, ec)) co_return;
    checked -= std::min(checked, held - buffer.size());  // the parser took that many from the front
  }
}

}  // namespace detail

// Parses what `buffer` (one contiguous data(), as beast::flat_buffer) holds, then reads
// `stream` into it, until `until`. With a `timeout`, it is set on the stream
// (expires_after) before the first socket read and bounds them all; without, the stream's
// deadline stands. What the buffer held is parsed here, without a coroutine: a request
// after a keep-alive wait and a body that came with its header need no read (Pending).
template <typename AsyncStream, bool isRequest, typename DynamicBuffer>
Pending StartReadHttp(AsyncStream& stream, DynamicBuffer& buffer, boost::beast::http::basic_parser<isRequest>& parser,
                      ParseUntil until, std::optional<std::chrono::milliseconds> timeout,
                      boost::beast::error_code& ec) {
  if (ParseBuffered(parser, buffer, until, ec)) return std::nullopt;
  return detail::ReadHttpMore(stream, buffer, parser, until, timeout, ec);
}

// StartReadHttp to its end, for callers off the per-request path (a coroutine of its own
// around StartReadHttp's).
template <typename AsyncStream, bool isRequest, typename DynamicBuffer>
boost::asio::awaitable<void> ReadHttp(AsyncStream& stream, DynamicBuffer& buffer,
                                      boost::beast::http::basic_parser<isRequest>& parser, ParseUntil until,
                                      std::optional<std::chrono::milliseconds> timeout, boost::beast::error_code& ec) {
  if (Pending rest = StartReadHttp(stream, buffer, parser, until, timeout, ec)) co_await std::move(*rest);
}

}  // namespace meshplug::net
