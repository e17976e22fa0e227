// HTTP/1.1 framing lines end in CRLF. Beast's parser does not fail on a bare LF in a
// header, a chunk-size line or a trailer: it waits for a CR that never comes, so a peer
// holds the connection (and the request already sent upstream) until a timeout. Wrapped
// in StrictLineEndings, the stream a parser reads from fails the read with
// bad_line_ending instead.
//
// Why the check is sound: Beast reads from the stream only when the parser needs more
// bytes, and then what the buffer still holds is framing not yet complete; body bytes are
// always handed out before a read. So a bare LF among those bytes is a framing error, and
// one in a body never is. Each read rescans the pending bytes; they are bounded by the
// buffer's max_size (the header limit), like the parser's own scans.
#pragma once

#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <cstring>

namespace meshplug::net {

// Whether `bytes` hold an LF not preceded by CR.
inline bool HasBareLf(boost::asio::const_buffer bytes) {
  const char* const begin = static_cast<const char*>(bytes.data());
  const char* const end = begin + bytes.size();
  for (const char* p = begin; p < end;) {
    const char* lf = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
    if (lf == nullptr) return false;
    if (lf == begin || lf[-1] != '\r') return true;
    p = lf + 1;
  }
  return false;
}

// A view of `stream` for one parser read into `buffer` (a beast::flat_buffer or any
// dynamic buffer with a single contiguous data()).
template <typename Stream, typename DynamicBuffer>
class StrictLineEndings {
 public:
  using executor_type = typename Stream::executor_type;

  StrictLineEndings(Stream& stream, const DynamicBuffer& buffer) : stream_(stream), buffer_(buffer) {}

  executor_type get_executor() { return stream_.get_executor(); }

  template <typename MutableBuffers, typename Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::beast::error_code, std::size_t)>(
        [this](auto handler, const MutableBuffers& into) {
          if (HasBareLf(boost::asio::buffer(buffer_.data()))) {
            boost::asio::post(stream_.get_executor(),
                              boost::beast::bind_handler(std::move(handler),
                                                         boost::beast::http::error::bad_line_ending, 0));
            return;
          }
          stream_.async_read_some(into, std::move(handler));
        },
        token, buffers);
  }

 private:
  Stream& stream_;
  const DynamicBuffer& buffer_;
};

}  // namespace meshplug::net
