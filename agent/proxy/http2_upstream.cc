#include "agent/proxy/http2_upstream.h"

#include <openssl/ssl.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <algorithm>
#include <cstring>

#include "agent/proxy/body_piece.h"
#include "agent/proxy/grpc.h"
#include "common/strings.h"

namespace meshplug::agent::proxy {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::awaitable;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

class Http2UpstreamConnection : public std::enable_shared_from_this<Http2UpstreamConnection> {
 public:
  Http2UpstreamConnection(std::unique_ptr<net::UpstreamConnection> connection, milliseconds idle_timeout,
                          uint32_t max_header_bytes)
      : connection_(std::move(connection)), idle_timeout_(idle_timeout), max_header_bytes_(max_header_bytes),
        writer_wake_(connection_->stream.get_executor()),
        idle_(connection_->stream.get_executor()),
        ping_wake_(connection_->stream.get_executor()) {}
  ~Http2UpstreamConnection() {
    if (session_) nghttp2_session_del(session_);
  }

  bool Start();
  // New streams may go on this connection.
  bool usable() const { return alive_ && !going_away_ && nghttp2_session_check_request_allowed(session_); }
  // Submits `request` on a new stream for `stream`; its id, or negative when nghttp2 refused.
  int32_t Submit(const http::request_header<>& request, bool has_body, bool trailers, Http2UpstreamStream* stream);
  // A stream object is going away: resets the stream if it is still open.
  void Detach(Http2UpstreamStream& stream);
  nghttp2_session* session() { return session_; }
  void Flush() { writer_wake_.Notify(); }
  void KeepAlive(milliseconds interval, milliseconds timeout);
  bool keepalive_failed() const { return keepalive_failed_; }
  // Closes the connection and the socket: every loop ends.
  void Shut();

 private:
  // Each loop holds the connection (its argument) while it runs.
  awaitable<void> ReadLoop(std::shared_ptr<Http2UpstreamConnection> self);
  awaitable<void> WriteLoop(std::shared_ptr<Http2UpstreamConnection> self);
  awaitable<void> IdleLoop(std::shared_ptr<Http2UpstreamConnection> self);
  awaitable<void> PingLoop(std::shared_ptr<Http2UpstreamConnection> self, milliseconds interval, milliseconds timeout);
  void Closed();
  Http2UpstreamStream* Find(int32_t id) {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second;
  }

  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                      const uint8_t* value, size_t valuelen, uint8_t flags, void* self);
  static int OnFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* self);
  static int OnDataChunk(nghttp2_session*, uint8_t flags, int32_t stream_id, const uint8_t* data, size_t len,
                         void* self);
  static int OnStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* self);

  std::unique_ptr<net::UpstreamConnection> connection_;
  milliseconds idle_timeout_;
  uint32_t max_header_bytes_;  // per response header block and per trailer block
  nghttp2_session* session_ = nullptr;
  // Open streams; a stream object removes itself (Detach) when it goes.
  std::map<int32_t, Http2UpstreamStream*> streams_;
  bool alive_ = true;
  bool going_away_ = false;  // a GOAWAY went or came: no new streams
  Signal writer_wake_;
  IdleWatch idle_;
  Signal ping_wake_;  // PingLoop's wait; a PING's ACK (while awaited) and Closed end it
  bool keepalive_ = false;     // PingLoop runs
  uint64_t reads_ = 0;         // socket reads that brought bytes
  bool awaiting_ack_ = false;  // PingLoop waits for a PING's answer
  bool keepalive_failed_ = false;
};

// ---- Http2UpstreamStream

Http2UpstreamStream::Http2UpstreamStream(std::shared_ptr<Http2UpstreamConnection> connection,
                                         const asio::any_io_executor& executor)
    : connection_(std::move(connection)), outbox_(executor), header_wake_(executor), inbox_(executor) {}

bool Http2UpstreamStream::keepalive_failed() const { return connection_->keepalive_failed(); }

void Http2UpstreamStream::Closed(std::optional<uint32_t> error) {
  if (closed_) return;
  closed_ = true;
  close_error_ = error;
  outbox_.Close();
  inbox_.Close();
  header_wake_.Notify();
}

Http2UpstreamStream::~Http2UpstreamStream() { connection_->Detach(*this); }

void Http2UpstreamStream::Cancel() { connection_->Detach(*this); }

void Http2UpstreamStream::SetReceiveWindow(int32_t bytes) {
  if (closed_) return;
  nghttp2_session_set_local_window_size(connection_->session(), NGHTTP2_FLAG_NONE, id_, bytes);
  connection_->Flush();
}

void Http2UpstreamStream::KeepAlive(milliseconds interval, milliseconds timeout) {
  connection_->KeepAlive(interval, timeout);
}

awaitable<void> Http2UpstreamStream::Write(std::string_view piece, bool last, milliseconds idle, beast::error_code& ec) {
  if (closed_) {
    ec = asio::error::connection_reset;
    co_return;
  }
  outbox_.Append(piece, last);
  nghttp2_session_resume_data(connection_->session(), id_);
  connection_->Flush();
  co_await outbox_.Drain(kBodyPieceBytes, idle, ec);
}

awaitable<void> Http2UpstreamStream::ReadHeader(http::response_header<>& out, Clock::time_point deadline,
                                                beast::error_code& ec) {
  while (!header_) {
    if (closed_) {
      // REFUSED_STREAM: the server did not process it (RFC 9113 §8.7); it may go again.
      ec = asio::error::connection_reset;
      if (close_error_ == NGHTTP2_REFUSED_STREAM) ec = asio::error::try_again;
      co_return;
    }
    const bool woken = co_await header_wake_.Wait(deadline);
    if (!woken) {
      ec = beast::error::timeout;
      co_return;
    }
  }
  // Moved: header_ stays set (trailers come after it) and nothing reads it again.
  out = std::move(*header_);
}

awaitable<void> Http2UpstreamStream::ReadBody(std::string& out, milliseconds idle, beast::error_code& ec) {
  return inbox_.Read(out, kBodyPieceBytes, idle,
                     [this](size_t n) {
                       nghttp2_session_consume_stream(connection_->session(), id_, n);
                       connection_->Flush();
                     },
                     ec);
}

// ---- Http2UpstreamConnection

bool Http2UpstreamConnection::Start() {
  // A response body is acknowledged as the exchange relays it: an upstream sends no faster
  // than the client reads.
  session_ = NewHttp2Session(false, {nullptr, OnHeader, OnFrameRecv, OnDataChunk, OnStreamClose}, this,
                             {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}, {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, max_header_bytes_}});
  if (!session_) return false;
  const asio::any_io_executor executor = connection_->stream.get_executor();
  asio::co_spawn(executor, ReadLoop(shared_from_this()), asio::detached);
  asio::co_spawn(executor, WriteLoop(shared_from_this()), asio::detached);
  asio::co_spawn(executor, IdleLoop(shared_from_this()), asio::detached);
  return true;
}

int32_t Http2UpstreamConnection::Submit(const http::request_header<>& request, bool has_body, bool trailers,
                                        Http2UpstreamStream* stream) {
  NvList nva;
  nva.Add(":method", request.method_string());
  nva.Add(":scheme", connection_->stream.secure() ? "https" : "http");
  nva.Add(":authority", request[http::field::host]);
  nva.Add(":path", request.target());
  nva.AddFields(request, http::field::host);
  // gRPC servers look for it (an HTTP/1.1 hop would have dropped it as hop-by-hop).
  if (trailers) nva.Add("te", "trailers");
  nghttp2_data_provider provider;
  provider.source.ptr = nullptr;
  provider.read_callback = [](nghttp2_session*, int32_t id, uint8_t* buf, size_t length, uint32_t* flags,
                              nghttp2_data_source*, void* self) -> ssize_t {
    Http2UpstreamStream* s = static_cast<Http2UpstreamConnection*>(self)->Find(id);
    // A stream whose exchange has gone is reset, not fed.
    if (!s) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return s->outbox_.Take(buf, length, flags);
  };
  const int32_t id = nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(), has_body ? &provider : nullptr, nullptr);
  if (id < 0) return id;
  stream->id_ = id;
  streams_[id] = stream;
  idle_.Touch();
  Flush();
  return id;
}

void Http2UpstreamConnection::Detach(Http2UpstreamStream& stream) {
  auto it = streams_.find(stream.id_);
  if (it == streams_.end() || it->second != &stream) return;
  streams_.erase(it);
  if (alive_ && !stream.closed_) {
    stream.inbox_.Drop();
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream.id_, NGHTTP2_CANCEL);
    Flush();
  }
  stream.Closed(NGHTTP2_CANCEL);
  idle_.Touch();
}

void Http2UpstreamConnection::KeepAlive(milliseconds interval, milliseconds timeout) {
  if (keepalive_ || !alive_) return;
  keepalive_ = true;
  asio::co_spawn(connection_->stream.get_executor(), PingLoop(shared_from_this(), interval, timeout), asio::detached);
}

awaitable<void> Http2UpstreamConnection::PingLoop(std::shared_ptr<Http2UpstreamConnection>, milliseconds interval,
                                                  milliseconds timeout) {
  while (alive_) {
    co_await ping_wake_.Wait(Clock::now() + interval);
    if (!alive_) break;
    const uint64_t reads = reads_;
    nghttp2_submit_ping(session_, NGHTTP2_FLAG_NONE, nullptr);
    Flush();
    awaiting_ack_ = true;
    co_await ping_wake_.Wait(Clock::now() + timeout);
    awaiting_ack_ = false;
    // Anything from the peer counts (the ACK is read in one of those reads), read or still
    // waiting in the socket: a loop that ran late (its thread busy) finds the answer unread
    // behind the timer.
    beast::error_code ec;
    const bool heard = reads_ != reads || connection_->stream.socket().available(ec) > 0;
    if (alive_ && !heard) {
      keepalive_failed_ = true;
      Shut();
    }
  }
}

void Http2UpstreamConnection::Shut() {
  Closed();
  beast::error_code ec;
  connection_->stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  connection_->stream.cancel();
}

void Http2UpstreamConnection::Closed() {
  alive_ = false;
  ping_wake_.Notify();
  for (auto& [id, stream] : streams_) stream->Closed(std::nullopt);
  streams_.clear();
  Flush();
  idle_.Stop();
}

awaitable<void> Http2UpstreamConnection::ReadLoop(std::shared_ptr<Http2UpstreamConnection>) {
  // As the server side's: the writer wakes when a read needs an answer, or when a GOAWAY
  // came and the connection may end.
  co_await ReadFrames(connection_->stream, session_, "", [this] {
    ++reads_;
    if (going_away_ || nghttp2_session_want_write(session_)) Flush();
  });
  Closed();
}

awaitable<void> Http2UpstreamConnection::WriteLoop(std::shared_ptr<Http2UpstreamConnection>) {
  std::string scratch;
  while (alive_) {
    // A slow upstream that reads nothing for the idle timeout fails the connection.
    const bool ok = co_await WriteFrames(connection_->stream, session_, idle_timeout_, scratch);
    if (!ok) break;
    if (going_away_ && streams_.empty()) break;
    if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) break;
    co_await writer_wake_.Wait(Clock::time_point::max());
  }
  Shut();
}

awaitable<void> Http2UpstreamConnection::IdleLoop(std::shared_ptr<Http2UpstreamConnection>) {
  if (co_await idle_.Quiet(idle_timeout_, [this] { return !streams_.empty(); })) {
    going_away_ = true;
    nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, nullptr, 0);
    Flush();
  }
}

int Http2UpstreamConnection::OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                                      const uint8_t* value, size_t valuelen, uint8_t, void* self) {
  Http2UpstreamStream* stream = static_cast<Http2UpstreamConnection*>(self)->Find(frame->hd.stream_id);
  if (!stream || frame->hd.type != NGHTTP2_HEADERS) return 0;
  // Counted as HPACK counts (name + value + 32), before anything is kept: past the limit
  // the stream is reset, so a header block that decodes to far more than it weighs (an
  // HPACK bomb) costs no memory.
  stream->header_bytes_ += namelen + valuelen + 32;
  if (stream->header_bytes_ > static_cast<Http2UpstreamConnection*>(self)->max_header_bytes_) {
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }
  const std::string_view n(reinterpret_cast<const char*>(name), namelen);
  const std::string_view v(reinterpret_cast<const char*>(value), valuelen);
  if (stream->header_) {
    stream->trailers_.insert(n, v);
  } else if (n == ":status") {
    unsigned status = 0;
    ParseNumber(v, status);  // nghttp2 has checked it is three digits
    stream->receiving_.result(status);
  } else if (!n.starts_with(':')) {
    stream->receiving_.insert(n, v);
  }
  return 0;
}

int Http2UpstreamConnection::OnFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* self) {
  auto* connection = static_cast<Http2UpstreamConnection*>(self);
  if (frame->hd.type == NGHTTP2_GOAWAY) {
    connection->going_away_ = true;
    return 0;
  }
  if (frame->hd.type == NGHTTP2_PING && (frame->hd.flags & NGHTTP2_FLAG_ACK)) {
    if (connection->awaiting_ack_) connection->ping_wake_.Notify();
    return 0;
  }
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
  Http2UpstreamStream* stream = connection->Find(frame->hd.stream_id);
  if (!stream) return 0;
  if (frame->hd.type == NGHTTP2_HEADERS && !stream->header_) {
    // An interim (1xx) response is not passed on; the final one follows.
    if (stream->receiving_.result_int() / 100 != 1) stream->header_ = std::move(stream->receiving_);
    stream->receiving_ = {};
    stream->header_bytes_ = 0;  // the trailers count on their own
  }
  if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) stream->inbox_.End();
  stream->header_wake_.Notify();
  return 0;
}

int Http2UpstreamConnection::OnDataChunk(nghttp2_session* session, uint8_t, int32_t stream_id, const uint8_t* data,
                                         size_t len, void* self) {
  Http2UpstreamStream* stream = static_cast<Http2UpstreamConnection*>(self)->Find(stream_id);
  // The connection's window is given back at once, a stream's as its body is relayed: a
  // client that does not read holds its own stream's window (bounded), never the
  // connection's, which every other client of this endpoint shares.
  nghttp2_session_consume_connection(session, len);
  if (!stream) {
    nghttp2_session_consume_stream(session, stream_id, len);
    return 0;
  }
  stream->inbox_.Append(data, len);
  return 0;
}

int Http2UpstreamConnection::OnStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code,
                                           void* self) {
  auto* connection = static_cast<Http2UpstreamConnection*>(self);
  Http2UpstreamStream* stream = connection->Find(stream_id);
  if (!stream) return 0;
  stream->Closed(error_code);
  connection->streams_.erase(stream_id);
  connection->idle_.Touch();
  return 0;
}

// ---- Http2UpstreamPool

void Http2UpstreamPool::CloseAll() {
  for (auto& [key, connection] : connections_) connection->Shut();
  connections_.clear();
}

std::shared_ptr<Http2UpstreamConnection> Http2UpstreamPool::Usable(const std::string& key) const {
  auto it = connections_.find(key);
  if (it == connections_.end() || !it->second->usable()) return nullptr;
  return it->second;
}

awaitable<std::shared_ptr<Http2UpstreamConnection>> Http2UpstreamPool::Connect(
    const std::string& key, const std::string& host, uint16_t port, milliseconds connect_timeout,
    milliseconds idle_timeout, uint32_t max_header_bytes, const net::TlsOrigination* tls, beast::error_code& ec) {
  // Connections that can take no new stream leave the pool (their open streams keep them
  // until they end), so endpoints that went away do not hold sockets.
  std::erase_if(connections_, [](const auto& entry) { return !entry.second->usable(); });
  std::optional<net::TlsOrigination> h2;
  if (tls) {
    h2 = *tls;
    h2->http2 = true;
  }
  const net::TlsOrigination* via = h2 ? &*h2 : nullptr;
  std::unique_ptr<net::UpstreamConnection> raw = co_await net::ConnectUpstream(executor_, host, port, connect_timeout, ec, via);
  if (!raw) co_return nullptr;
  auto connection = std::make_shared<Http2UpstreamConnection>(std::move(raw), idle_timeout, max_header_bytes);
  if (!connection->Start()) {
    ec = asio::error::no_memory;
    co_return nullptr;
  }
  connections_[key] = connection;
  co_return connection;
}

awaitable<std::unique_ptr<Http2UpstreamStream>> Http2UpstreamPool::Open(
    const std::string& host, uint16_t port, milliseconds connect_timeout, milliseconds idle_timeout,
    uint32_t max_header_bytes, const net::TlsOrigination* tls, const http::request_header<>& request, bool has_body,
    const bool& given_up, beast::error_code& ec) {
  const std::string key = net::PoolKey(host, port, tls);
  std::shared_ptr<Http2UpstreamConnection> connection = Usable(key);
  if (!connection) {
    auto waiting = connecting_.find(key);
    if (waiting != connecting_.end()) {
      const std::shared_ptr<Connecting> pending = waiting->second;
      beast::error_code woken;
      co_await pending->done.async_wait(asio::redirect_error(asio::use_awaitable, woken));
      connection = Usable(key);
      if (!connection) {
        ec = pending->ec;
        if (!ec) ec = asio::error::not_connected;
        co_return nullptr;
      }
    } else {
      const auto pending = std::make_shared<Connecting>(executor_);
      connecting_.emplace(key, pending);
      connection = co_await Connect(key, host, port, connect_timeout, idle_timeout, max_header_bytes, tls, ec);
      pending->ec = ec;
      connecting_.erase(key);
      pending->done.cancel();
      if (!connection) co_return nullptr;
    }
  }
  if (given_up) {
    ec = asio::error::operation_aborted;
    co_return nullptr;
  }
  auto stream = std::make_unique<Http2UpstreamStream>(connection, executor_);
  if (connection->Submit(request, has_body, IsGrpc(request), stream.get()) < 0) {
    ec = asio::error::try_again;
    co_return nullptr;
  }
  co_return stream;
}

}  // namespace meshplug::agent::proxy
