#include "agent/proxy/http2_common.h"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <algorithm>
#include <cstring>

#include "agent/proxy/hop_by_hop.h"

namespace meshplug::agent::proxy {

namespace asio = boost::asio;
namespace beast = boost::beast;
using Clock = std::chrono::steady_clock;

asio::awaitable<bool> Signal::Wait(Clock::time_point deadline) {
  if (!timer_) timer_.emplace(executor_);
  timer_->expires_at(deadline);
  beast::error_code ec;
  waiting_ = true;
  co_await timer_->async_wait(asio::redirect_error(asio::use_awaitable, ec));
  waiting_ = false;
  co_return ec == asio::error::operation_aborted;
}

asio::awaitable<bool> IdleWatch::Quiet(std::chrono::milliseconds idle, std::function<bool()> busy) {
  while (!stopped_) {
    co_await wake_.Wait(last_ + idle);
    if (stopped_) break;
    const Clock::time_point now = Clock::now();
    if (now < last_ + idle) continue;  // touched meanwhile
    if (!busy()) co_return true;
    last_ = now;  // a full idle time more: a long stream is looked at once per idle time
  }
  co_return false;
}

void Http2Inbox::Append(const uint8_t* data, size_t size) {
  bytes_.append(reinterpret_cast<const char*>(data), size);
  readable_.Notify();
}

void Http2Inbox::End() {
  ended_ = true;
  readable_.Notify();
}

void Http2Inbox::Close() {
  closed_ = true;
  readable_.Notify();
}

void Http2Inbox::Cancel() {
  if (!readable_.waiting()) return;
  cancelled_ = true;
  readable_.Notify();
}

size_t Http2Inbox::Drop() {
  const size_t dropped = unread();
  bytes_.clear();
  offset_ = 0;
  return dropped;
}

asio::awaitable<void> Http2Inbox::Read(std::string& out, size_t max, std::chrono::milliseconds idle,
                                       std::function<void(size_t)> consume, beast::error_code& ec) {
  out.clear();
  const Clock::time_point deadline = Clock::now() + idle;
  while (true) {
    if (cancelled_) {
      cancelled_ = false;
      ec = asio::error::operation_aborted;
      co_return;
    }
    if (unread() > 0) {
      const size_t n = std::min(unread(), max);
      out.assign(bytes_, offset_, n);
      offset_ += n;
      if (offset_ == bytes_.size()) Drop();
      if (!closed_) consume(n);
      co_return;
    }
    if (ended_) co_return;
    if (closed_) {
      ec = asio::error::connection_reset;
      co_return;
    }
    const bool woken = co_await readable_.Wait(deadline);
    if (!woken) {
      ec = beast::error::timeout;
      co_return;
    }
  }
}

void Http2Outbox::Append(std::string_view piece, bool last) {
  bytes_.append(piece);
  if (last) ended_ = true;
}

void Http2Outbox::Close() {
  closed_ = true;
  writable_.Notify();
}

ssize_t Http2Outbox::Take(uint8_t* buf, size_t length, uint32_t* flags) {
  const size_t n = std::min(length, pending());
  std::memcpy(buf, bytes_.data() + offset_, n);
  offset_ += n;
  if (offset_ == bytes_.size()) {
    bytes_.clear();
    offset_ = 0;
  }
  if (pending() == 0 && ended_) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    eof_taken_ = true;
    writable_.Notify();
    return static_cast<ssize_t>(n);
  }
  if (n > 0) writable_.Notify();
  if (n == 0) return NGHTTP2_ERR_DEFERRED;
  return static_cast<ssize_t>(n);
}

asio::awaitable<void> Http2Outbox::Drain(size_t limit, std::chrono::milliseconds idle, beast::error_code& ec) {
  const Clock::time_point deadline = Clock::now() + idle;
  while (pending() > limit || (limit == 0 && ended_ && !eof_taken_)) {
    if (closed_) {
      ec = asio::error::connection_reset;
      co_return;
    }
    const bool woken = co_await writable_.Wait(deadline);
    if (!woken) {
      ec = beast::error::timeout;
      co_return;
    }
  }
}

nghttp2_session* NewHttp2Session(bool server, const Http2Callbacks& callbacks, void* user,
                                 std::vector<nghttp2_settings_entry> settings) {
  nghttp2_session_callbacks* cb = nullptr;
  if (nghttp2_session_callbacks_new(&cb) != 0) return nullptr;
  if (callbacks.on_begin_headers) nghttp2_session_callbacks_set_on_begin_headers_callback(cb, callbacks.on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cb, callbacks.on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, callbacks.on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, callbacks.on_data_chunk_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, callbacks.on_stream_close);
  nghttp2_option* option = nullptr;
  nghttp2_option_new(&option);
  nghttp2_option_set_no_auto_window_update(option, 1);
  nghttp2_session* session = nullptr;
  const int rv = server ? nghttp2_session_server_new2(&session, cb, user, option)
                        : nghttp2_session_client_new2(&session, cb, user, option);
  nghttp2_option_del(option);
  nghttp2_session_callbacks_del(cb);
  if (rv != 0) return nullptr;
  settings.push_back({NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, kHttp2StreamWindow});
  nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, settings.data(), settings.size());
  nghttp2_session_set_local_window_size(session, NGHTTP2_FLAG_NONE, 0, kHttp2ConnectionWindow);
  return session;
}

void NvList::Add(std::string_view name, std::string_view value) {
  nva_.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                  reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
                  NGHTTP2_NV_FLAG_NONE});
}

void NvList::AddFields(const beast::http::fields& fields, beast::http::field skip) {
  for (const auto& field : fields) {
    if (HopByHop(field.name()) || (skip != beast::http::field::unknown && field.name() == skip)) continue;
    Add(field.name_string(), field.value());
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
