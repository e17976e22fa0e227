#include "agent/proxy/http2_session.h"

#include <nghttp2/nghttp2.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <algorithm>
#include <charconv>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "agent/proxy/body.h"
#include "agent/proxy/downstream.h"
#include "agent/proxy/exchange.h"
#include "agent/proxy/http2_common.h"
#include "agent/proxy/http_message.h"
#include "agent/proxy/in_flight.h"
#include "agent/proxy/limits.h"
#include "common/strings.h"

namespace meshplug::agent::proxy {
namespace {

using asio::awaitable;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// Response bytes a stream may hold that flow control has not let out yet; SendBody waits
// (at most the idle timeout) beyond this.
constexpr size_t kSendBufferBytes = 64 * 1024;

class Http2Connection;

// One stream: the Downstream of its request's exchange.
class Http2Stream : public Downstream {
 public:
  Http2Stream(Http2Connection& connection, int32_t id, const asio::any_io_executor& executor)
      : connection_(connection), id_(id), executor_(executor), readable_(executor), writable_(executor) {}

  int32_t id() const { return id_; }

  // Filled by the connection as frames arrive.
  std::string method, path, authority;
  http::request_header<> request;
  size_t header_bytes = 0;
  size_t header_count = 0;
  bool headers_too_large = false;

  // The connection's events.
  void Received(const uint8_t* data, size_t size) {
    body_.append(reinterpret_cast<const char*>(data), size);
    readable_.Notify();
  }
  void Ended() {
    body_ended_ = true;
    readable_.Notify();
  }
  void Closed() {
    closed_ = true;
    readable_.Notify();
    writable_.Notify();
    // The client went away before the whole response was handed over: the upstream too.
    if (on_reset_ && !(response_ended_ && pending() == 0)) std::exchange(on_reset_, nullptr)();
  }
  // The exchange has ended: bytes still arriving are acknowledged and dropped.
  void Finish();
  bool finished() const { return finished_; }
  bool closed() const { return closed_; }
  bool response_ended() const { return response_ended_; }
  bool request_ended() const { return body_ended_; }
  size_t unread() const { return body_.size() - body_offset_; }
  // The data source nghttp2 reads a response body from.
  ssize_t ReadResponse(uint8_t* buf, size_t length, uint32_t* flags);

  void set_idle_timeout(milliseconds idle) { idle_ = idle; }

  // Downstream.
  asio::any_io_executor executor() override { return executor_; }
  bool body_done() const override { return body_ended_ && unread() == 0; }
  std::optional<uint64_t> body_length() const override;
  awaitable<void> ReadBody(std::string& out, beast::error_code& ec) override;
  void CancelRead() override {
    cancel_read_ = true;
    readable_.Notify();
  }
  awaitable<void> SendContinue(beast::error_code& ec) override;
  awaitable<void> SendHeader(http::response_header<> header, bool has_body, std::optional<uint64_t> length, bool hold,
                             beast::error_code& ec) override;
  awaitable<void> SendBody(std::string_view piece, bool last, beast::error_code& ec) override;
  bool header_held() const override { return false; }
  void SetTrailers(const http::fields& trailers) override { trailers_ = trailers; }
  awaitable<void> SendWhole(http::response_header<> header, std::string_view body, beast::error_code& ec) override;
  void EndAfterResponse() override {}
  void OnClientReset(std::function<void()> abandon) override { on_reset_ = std::move(abandon); }
  awaitable<void> SendSwitch(http::response_header<>, beast::error_code& ec) override {
    ec = asio::error::operation_not_supported;
    co_return;
  }
  awaitable<RelayEnd> RelaySwitched(net::UpstreamConnection&, RelayTimeouts) override { co_return RelayEnd::kEnded; }

 private:
  // Submits the response header; `body`: a body follows (from ReadResponse).
  void Submit(const http::response_header<>& header, bool body, beast::error_code& ec);
  // Waits until at most `limit` response bytes are left for nghttp2 to take.
  awaitable<void> Drain(size_t limit, beast::error_code& ec);
  size_t pending() const { return out_.size() - out_offset_; }

  Http2Connection& connection_;
  int32_t id_;
  asio::any_io_executor executor_;
  milliseconds idle_{60'000};

  std::string body_;  // request body received, from body_offset_ on not read yet
  size_t body_offset_ = 0;
  bool body_ended_ = false;
  bool cancel_read_ = false;
  Signal readable_;

  bool response_submitted_ = false;
  bool response_ended_ = false;  // the whole response is queued (END_STREAM follows it)
  http::fields trailers_;  // sent after the body
  std::string out_;  // response body not taken by nghttp2 yet, from out_offset_ on
  size_t out_offset_ = 0;
  Signal writable_;

  bool closed_ = false;
  bool finished_ = false;
  std::function<void()> on_reset_;
};

class Http2Connection {
 public:
  Http2Connection(net::Stream& stream, const ProxyEnv& env, std::string peer_identity)
      : stream_(stream), env_(env), peer_identity_(std::move(peer_identity)), writer_wake_(stream.get_executor()),
        streams_done_(stream.get_executor()), idle_(stream.get_executor()) {}
  ~Http2Connection() {
    if (session_) nghttp2_session_del(session_);
  }

  awaitable<void> Run(std::string initial);

  nghttp2_session* session() { return session_; }
  // Something may be ready to send. Until it is written, the connection counts as work in
  // progress, so a drain does not stop the agent between a stream's end and its last bytes.
  void Flush() {
    if (!unwritten_) unwritten_.emplace(env_.in_flight);
    writer_wake_.Notify();
  }

 private:
  bool Start(const Limits& limits);
  awaitable<void> WriteLoop();
  awaitable<void> IdleLoop(milliseconds idle);
  void BeginStream(int32_t id);
  void StartExchange(const std::shared_ptr<Http2Stream>& stream);
  awaitable<void> ServeStream(std::shared_ptr<Http2Stream> stream);
  void StreamClosed(int32_t id);
  // Ends the session at once: a GOAWAY with `error`, and nothing more is sent.
  void Terminate(uint32_t error) {
    nghttp2_session_terminate_session(session_, error);
    Flush();
  }
  // Ends the session gracefully: a GOAWAY (no new streams), and the connection closes
  // once the open streams have ended and their bytes are written.
  void GoAway() {
    if (going_away_) return;
    going_away_ = true;
    nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session_),
                          NGHTTP2_NO_ERROR, nullptr, 0);
    Flush();
  }
  Http2Stream* Find(int32_t id) {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
  }

  static int OnBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* self);
  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                      const uint8_t* value, size_t valuelen, uint8_t flags, void* self);
  static int OnFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* self);
  static int OnDataChunk(nghttp2_session*, uint8_t flags, int32_t stream_id, const uint8_t* data, size_t len,
                         void* self);
  static int OnStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* self);

  net::Stream& stream_;
  const ProxyEnv& env_;
  std::string peer_identity_;
  nghttp2_session* session_ = nullptr;
  Limits limits_;
  // Streams nghttp2 has open, by id; an exchange holds its own reference, so a stream the
  // client reset lives until its exchange has ended.
  std::map<int32_t, std::shared_ptr<Http2Stream>> streams_;
  int running_ = 0;  // exchanges not ended yet
  bool reading_ = true;
  bool going_away_ = false;
  bool writing_ = true;  // WriteLoop runs
  bool idling_ = true;  // IdleLoop runs
  Signal writer_wake_;
  std::optional<InFlight> unwritten_;
  Signal streams_done_;
  Signal idle_;
};

// ---- Http2Stream

void Http2Stream::Finish() {
  finished_ = true;
  // What the exchange did not read will not be: give the client its window back.
  if (!closed_ && unread() > 0) nghttp2_session_consume(connection_.session(), id_, unread());
  body_.clear();
  body_offset_ = 0;
  if (closed_) return;
  if (!response_ended_ || pending() > 0) {
    nghttp2_submit_rst_stream(connection_.session(), NGHTTP2_FLAG_NONE, id_, NGHTTP2_INTERNAL_ERROR);
  } else if (!body_ended_) {
    // RFC 9113 §8.1: a complete response before the request ended; the client may stop.
    nghttp2_submit_rst_stream(connection_.session(), NGHTTP2_FLAG_NONE, id_, NGHTTP2_NO_ERROR);
  }
  connection_.Flush();
}

std::optional<uint64_t> Http2Stream::body_length() const {
  const std::string_view value = request[http::field::content_length];
  uint64_t n = 0;
  if (value.empty() || std::from_chars(value.data(), value.data() + value.size(), n).ec != std::errc()) {
    return std::nullopt;
  }
  return n;
}

awaitable<void> Http2Stream::ReadBody(std::string& out, beast::error_code& ec) {
  out.clear();
  const Clock::time_point deadline = Clock::now() + idle_;
  while (true) {
    if (cancel_read_) {
      cancel_read_ = false;
      ec = asio::error::operation_aborted;
      co_return;
    }
    if (unread() > 0) {
      const size_t n = std::min(unread(), kBodyPieceBytes);
      out.assign(body_, body_offset_, n);
      body_offset_ += n;
      if (body_offset_ == body_.size()) {
        body_.clear();
        body_offset_ = 0;
      }
      if (!closed_) nghttp2_session_consume(connection_.session(), id_, n);
      connection_.Flush();
      co_return;
    }
    if (body_ended_) co_return;
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

awaitable<void> Http2Stream::SendContinue(beast::error_code& ec) {
  if (closed_) {
    ec = asio::error::connection_reset;
    co_return;
  }
  static const char kStatus[] = ":status";
  static const char k100[] = "100";
  nghttp2_nv nv{const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(kStatus)),
                const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(k100)), sizeof kStatus - 1, sizeof k100 - 1,
                NGHTTP2_NV_FLAG_NONE};
  nghttp2_submit_headers(connection_.session(), NGHTTP2_FLAG_NONE, id_, nullptr, &nv, 1, nullptr);
  connection_.Flush();
}

ssize_t Http2Stream::ReadResponse(uint8_t* buf, size_t length, uint32_t* flags) {
  const size_t n = std::min(length, pending());
  std::memcpy(buf, out_.data() + out_offset_, n);
  out_offset_ += n;
  if (out_offset_ == out_.size()) {
    out_.clear();
    out_offset_ = 0;
  }
  if (n > 0) writable_.Notify();
  if (pending() == 0 && response_ended_) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (trailers_.begin() != trailers_.end()) {
      NvList nva;
      nva.AddFields(trailers_);
      // The trailers end the stream instead of this DATA frame.
      if (nghttp2_submit_trailer(connection_.session(), id_, nva.data(), nva.size()) == 0) {
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      }
    }
    return static_cast<ssize_t>(n);
  }
  if (n == 0) return NGHTTP2_ERR_DEFERRED;
  return static_cast<ssize_t>(n);
}

void Http2Stream::Submit(const http::response_header<>& header, bool body, beast::error_code& ec) {
  if (closed_) {
    ec = asio::error::connection_reset;
    return;
  }
  NvList nva;
  nva.Add(":status", std::to_string(header.result_int()));
  nva.AddFields(header);
  nghttp2_data_provider provider;
  provider.source.ptr = this;
  provider.read_callback = [](nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags,
                              nghttp2_data_source* source, void*) -> ssize_t {
    return static_cast<Http2Stream*>(source->ptr)->ReadResponse(buf, length, flags);
  };
  const int rv = nghttp2_submit_response(connection_.session(), id_, nva.data(), nva.size(), body ? &provider : nullptr);
  if (rv != 0) {
    ec = asio::error::invalid_argument;
    return;
  }
  response_submitted_ = true;
  if (!body) response_ended_ = true;
  connection_.Flush();
}

awaitable<void> Http2Stream::Drain(size_t limit, beast::error_code& ec) {
  const Clock::time_point deadline = Clock::now() + idle_;
  while (pending() > limit) {
    if (closed_) {
      ec = asio::error::connection_reset;
      co_return;
    }
    // A client that opens no window (a zero-window stall) holds the stream this long.
    const bool woken = co_await writable_.Wait(deadline);
    if (!woken) {
      ec = beast::error::timeout;
      co_return;
    }
  }
}

awaitable<void> Http2Stream::SendHeader(http::response_header<> header, bool has_body, std::optional<uint64_t> length,
                                        bool, beast::error_code& ec) {
  if (has_body) {
    if (length) {
      header.set(http::field::content_length, std::to_string(*length));
    } else {
      header.erase(http::field::content_length);
    }
  }
  Submit(header, has_body, ec);
  co_return;
}

awaitable<void> Http2Stream::SendBody(std::string_view piece, bool last, beast::error_code& ec) {
  if (closed_) {
    ec = asio::error::connection_reset;
    co_return;
  }
  out_.append(piece);
  if (last) response_ended_ = true;
  nghttp2_session_resume_data(connection_.session(), id_);
  connection_.Flush();
  size_t limit = kSendBufferBytes;
  if (last) limit = 0;
  co_await Drain(limit, ec);
}

awaitable<void> Http2Stream::SendWhole(http::response_header<> header, std::string_view body, beast::error_code& ec) {
  out_.assign(body);
  out_offset_ = 0;
  response_ended_ = true;
  Submit(header, !body.empty(), ec);
  if (!ec) co_await Drain(0, ec);
}

// ---- Http2Connection

bool Http2Connection::Start(const Limits& limits) {
  limits_ = limits;
  nghttp2_session_callbacks* callbacks = nullptr;
  nghttp2_session_callbacks_new(&callbacks);
  nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, OnBeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, OnHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, OnFrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, OnDataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, OnStreamClose);
  nghttp2_option* option = nullptr;
  nghttp2_option_new(&option);
  nghttp2_option_set_no_auto_window_update(option, 1);
  // The rest of the known attacks are nghttp2's defaults in Debian's 1.52 with its security
  // fixes: SETTINGS and PING floods (at most 1,000 queued acknowledgements), CONTINUATION
  // floods (8 per header block), RST_STREAM floods (a token bucket, 1,000 then 33/s).
  const int rv = nghttp2_session_server_new2(&session_, callbacks, this, option);
  nghttp2_option_del(option);
  nghttp2_session_callbacks_del(callbacks);
  if (rv != 0) return false;
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, limits.http2_max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, kHttp2StreamWindow},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, limits.max_header_bytes},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kHttp2ConnectionWindow);
  return true;
}

awaitable<void> Http2Connection::Run(std::string initial) {
  {
    std::shared_ptr<const chains::ChainSet> current = env_.chains->Get();
    if (!Start(current ? current->limits() : Limits{})) co_return;
  }
  asio::co_spawn(stream_.get_executor(), WriteLoop(), asio::detached);
  asio::co_spawn(stream_.get_executor(), IdleLoop(limits_.downstream_idle_timeout), asio::detached);
  const ssize_t failed = co_await ReadFrames(stream_, session_, std::move(initial), [this] { Flush(); });
  // A flood, a bad preface or a failed callback: say why and end.
  if (failed < 0) Terminate(failed == NGHTTP2_ERR_FLOODED ? NGHTTP2_ENHANCE_YOUR_CALM : NGHTTP2_PROTOCOL_ERROR);
  reading_ = false;
  // Every stream ends now; their exchanges see the stream closed.
  for (auto& [id, stream] : streams_) stream->Closed();
  Flush();
  idle_.Notify();
  // The loops refer to this connection: it ends after them.
  while (running_ > 0 || writing_ || idling_) co_await streams_done_.Wait(Clock::time_point::max());
}

awaitable<void> Http2Connection::WriteLoop() {
  std::string scratch;
  while (true) {
    const bool ok = co_await WriteFrames(stream_, session_, limits_.downstream_idle_timeout, scratch);
    if (!ok) break;
    unwritten_.reset();
    const bool done = !reading_ || (going_away_ && streams_.empty()) ||
                      (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_));
    if (done && running_ == 0) break;
    co_await writer_wake_.Wait(Clock::time_point::max());
  }
  unwritten_.reset();
  writing_ = false;
  // The reader may be waiting for bytes that no longer matter.
  beast::error_code ec;
  stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  stream_.cancel();
  streams_done_.Notify();
}

awaitable<void> Http2Connection::IdleLoop(milliseconds idle) {
  while (reading_) {
    const bool woken = co_await idle_.Wait(Clock::now() + idle);
    if (!woken && reading_ && streams_.empty() && running_ == 0) {
      // Idle too long: a GOAWAY, then the connection ends once it is written.
      GoAway();
      break;
    }
  }
  idling_ = false;
  streams_done_.Notify();
}

void Http2Connection::BeginStream(int32_t id) {
  auto stream = std::make_shared<Http2Stream>(*this, id, stream_.get_executor());
  stream->set_idle_timeout(limits_.downstream_idle_timeout);
  streams_[id] = std::move(stream);
  idle_.Notify();
}

void Http2Connection::StartExchange(const std::shared_ptr<Http2Stream>& stream) {
  if (running_ >= static_cast<int64_t>(limits_.http2_max_concurrent_streams)) {
    // Exchanges of streams the client already reset still run: no more work until they end.
    env_.stats->Count("meshplug_http2_refused_streams_total", {{"direction", env_.inbound ? "inbound" : "outbound"}});
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream->id(), NGHTTP2_REFUSED_STREAM);
    Flush();
    return;
  }
  ++running_;
  asio::co_spawn(stream_.get_executor(), ServeStream(stream), [this](std::exception_ptr) {
    --running_;
    streams_done_.Notify();
    Flush();
    idle_.Notify();
  });
}

awaitable<void> Http2Connection::ServeStream(std::shared_ptr<Http2Stream> stream) {
  InFlight in_flight(env_.in_flight);
  // The request runs on the set current when its header arrived.
  std::shared_ptr<const chains::ChainSet> chains = env_.chains->Get();
  beast::error_code ec;
  auto reject = [&](unsigned status, std::string reason) -> awaitable<void> {
    http::response_header<> header;
    header.result(status);
    header.set(http::field::content_type, "text/plain");
    reason += "\n";
    header.set(http::field::content_length, std::to_string(reason.size()));
    co_await stream->SendWhole(std::move(header), reason, ec);
  };
  if (!chains) {
    co_await reject(503, "agent has no configuration yet");
  } else if (stream->headers_too_large || stream->header_count > chains->limits().max_header_count) {
    co_await reject(431, "request header too large");
  } else if (stream->method == "CONNECT") {
    co_await reject(405, "CONNECT is not proxied over HTTP/2: call the service by its name or address");
  } else {
    ExchangeStart start;
    start.request = std::move(stream->request);
    start.request.version(11);
    start.request.method_string(stream->method);
    start.request.target(stream->path);
    // RFC 9113 §8.3.1: :authority, when present, is the Host.
    if (!stream->authority.empty()) start.request.set(http::field::host, stream->authority);
    std::optional<Rejection> rejection = CheckHost(start.request);
    if (!rejection) rejection = NormalizeTarget(start.request);
    if (rejection) {
      co_await reject(rejection->status, std::move(rejection->reason));
    } else {
      start.chains = std::move(chains);
      start.peer_identity = peer_identity_;
      co_await ServeExchange(env_, *stream, std::move(start));
    }
  }
  stream->Finish();
  // A drain lets the open streams finish, then ends the connection.
  if (env_.draining->load()) GoAway();
}

void Http2Connection::StreamClosed(int32_t id) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  Http2Stream& stream = *it->second;
  // Bytes the exchange will not read no longer hold the connection's window.
  if (stream.unread() > 0 && !stream.finished()) nghttp2_session_consume_connection(session_, stream.unread());
  stream.Closed();
  streams_.erase(it);
  idle_.Notify();
}

int Http2Connection::OnBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* self) {
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    static_cast<Http2Connection*>(self)->BeginStream(frame->hd.stream_id);
  }
  return 0;
}

int Http2Connection::OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                              const uint8_t* value, size_t valuelen, uint8_t, void* self) {
  auto* connection = static_cast<Http2Connection*>(self);
  // Trailers of a request are not passed on (the upstream request is HTTP/1.1).
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  Http2Stream* stream = connection->Find(frame->hd.stream_id);
  if (!stream) return 0;
  // HPACK's size of a field (RFC 9113 §6.5.2). Past the limit nothing more is kept, so a
  // header block that decodes to far more than it weighs (an HPACK bomb) costs no memory.
  stream->header_bytes += namelen + valuelen + 32;
  ++stream->header_count;
  if (stream->header_bytes > connection->limits_.max_header_bytes) stream->headers_too_large = true;
  if (stream->headers_too_large) return 0;
  const std::string_view n(reinterpret_cast<const char*>(name), namelen);
  const std::string_view v(reinterpret_cast<const char*>(value), valuelen);
  if (n == ":method") {
    stream->method = v;
  } else if (n == ":path") {
    stream->path = v;
  } else if (n == ":authority") {
    stream->authority = v;
  } else if (n.starts_with(':')) {
    // :scheme: the upstream request is plain HTTP/1.1 whatever the client used.
  } else if (n == "cookie" && stream->request.count(http::field::cookie)) {
    // RFC 9113 §8.2.3: cookie crumbs are joined for an HTTP/1.1 hop.
    const std::string joined = Cat(stream->request[http::field::cookie], "; ", v);
    stream->request.set(http::field::cookie, joined);
  } else {
    stream->request.insert(n, v);
  }
  return 0;
}

int Http2Connection::OnFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* self) {
  auto* connection = static_cast<Http2Connection*>(self);
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
  auto it = connection->streams_.find(frame->hd.stream_id);
  if (it == connection->streams_.end()) return 0;
  const std::shared_ptr<Http2Stream> stream = it->second;
  if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) stream->Ended();
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    connection->StartExchange(stream);
  }
  return 0;
}

int Http2Connection::OnDataChunk(nghttp2_session* session, uint8_t, int32_t stream_id, const uint8_t* data, size_t len,
                                 void* self) {
  Http2Stream* stream = static_cast<Http2Connection*>(self)->Find(stream_id);
  if (!stream || stream->finished()) {
    // Nobody reads it: acknowledged at once.
    nghttp2_session_consume(session, stream_id, len);
    return 0;
  }
  stream->Received(data, len);
  return 0;
}

int Http2Connection::OnStreamClose(nghttp2_session*, int32_t stream_id, uint32_t, void* self) {
  static_cast<Http2Connection*>(self)->StreamClosed(stream_id);
  return 0;
}

}  // namespace

awaitable<void> ServeHttp2(net::Stream& stream, std::string initial, const ProxyEnv& env, std::string peer_identity) {
  Http2Connection connection(stream, env, std::move(peer_identity));
  co_await connection.Run(std::move(initial));
}

}  // namespace meshplug::agent::proxy
