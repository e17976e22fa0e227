#include "agent/proxy/http2_common.h"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/string.hpp>

#include "common/strings.h"

namespace meshplug::agent::proxy {

namespace asio = boost::asio;
namespace beast = boost::beast;
using Clock = std::chrono::steady_clock;

Signal::Signal(const asio::any_io_executor& executor) : timer_(executor, Clock::time_point::max()) {}

asio::awaitable<bool> Signal::Wait(Clock::time_point deadline) {
  timer_.expires_at(deadline);
  beast::error_code ec;
  co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  co_return ec == asio::error::operation_aborted;
}

bool ConnectionSpecific(std::string_view name) {
  for (std::string_view hop : {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"}) {
    if (beast::iequals(name, hop)) return true;
  }
  return false;
}

void NvList::Add(std::string_view name, std::string_view value) {
  strings_.push_back(Lower(name));
  strings_.emplace_back(value);
  std::string& n = strings_[strings_.size() - 2];
  std::string& v = strings_.back();
  nva_.push_back({reinterpret_cast<uint8_t*>(n.data()), reinterpret_cast<uint8_t*>(v.data()), n.size(), v.size(),
                  NGHTTP2_NV_FLAG_NONE});
}

void NvList::AddFields(const beast::http::fields& fields) {
  for (const auto& field : fields) {
    if (!ConnectionSpecific(field.name_string())) Add(field.name_string(), field.value());
  }
}

asio::awaitable<ssize_t> ReadFrames(net::Stream& stream, nghttp2_session* session, std::string initial,
                                    const std::function<void()>& after) {
  std::vector<uint8_t> buffer(16 * 1024);
  std::string_view pending = initial;
  while (nghttp2_session_want_read(session)) {
    if (pending.empty()) {
      beast::error_code ec;
      // The connection's own idle rules end it; a stream's reads and writes have their own
      // timeouts.
      stream.expires_never();
      const size_t n = co_await stream.async_read_some(asio::buffer(buffer), asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return 0;
      pending = std::string_view(reinterpret_cast<const char*>(buffer.data()), n);
    }
    const ssize_t used =
        nghttp2_session_mem_recv(session, reinterpret_cast<const uint8_t*>(pending.data()), pending.size());
    pending = {};
    if (used < 0) co_return used;
    after();
  }
  co_return 0;
}

asio::awaitable<bool> WriteFrames(net::Stream& stream, nghttp2_session* session, std::chrono::milliseconds timeout,
                                  std::string& scratch) {
  while (true) {
    scratch.clear();
    while (scratch.size() < 64 * 1024) {
      const uint8_t* data = nullptr;
      const ssize_t n = nghttp2_session_mem_send(session, &data);
      if (n <= 0) break;
      scratch.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
    }
    if (scratch.empty()) co_return true;
    beast::error_code ec;
    stream.expires_after(timeout);
    co_await asio::async_write(stream, asio::buffer(scratch), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return false;
  }
}

}  // namespace meshplug::agent::proxy
