#include "agent/proxy/http2_session.h"

#include <nghttp2/nghttp2.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <algorithm>
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
      : connection_(connection), id_(id), executor_(executor), inbox_(executor), outbox_(executor) {}

  int32_t id() const { return id_; }

  // Filled by the connection as frames arrive.
  std::string method, path, authority;
  http::request_header<> request;
  // The request's Content-Length, kept when the header moves to the exchange (nghttp2 has
  // checked the DATA against it).
  std::optional<uint64_t> declared_length;
  size_t header_bytes = 0;
  size_t header_count = 0;
  bool headers_too_large = false;

  // The connection's events.
  void Received(const uint8_t* data, size_t size) { inbox_.Append(data, size); }
  void Ended() { inbox_.End(); }
  void Closed() {
    closed_ = true;
    inbox_.Close();
    outbox_.Close();
    // The client went away before the whole response was handed over: the upstream too.
    if (on_reset_ && !outbox_.done()) std::exchange(on_reset_, nullptr)();
  }
  // The exchange has ended: bytes still arriving are acknowledged and dropped.
  void Finish();
  bool finished() const { return finished_; }
  size_t unread() const { return inbox_.unread(); }
  // The data source nghttp2 reads a response body from.
  ssize_t ReadResponse(uint8_t* buf, size_t length, uint32_t* flags);

  void set_idle_timeout(milliseconds idle) { idle_ = idle; }

  // Downstream.
  asio::any_io_executor executor() override { return executor_; }
  bool body_done() const override { return inbox_.done(); }
  std::optional<uint64_t> body_length() const override;
  net::Pending ReadBody(std::string& out, beast::error_code& ec) override;
  void CancelRead() override { inbox_.Cancel(); }
  awaitable<void> SendContinue(beast::error_code& ec) override;
  net::Pending SendHeader(const http::response_header<>& header, bool has_body, std::optional<uint64_t> length, bool hold,
                             beast::error_code& ec) override;
  net::Pending SendBody(std::string_view piece, bool last, beast::error_code& ec) override;
  bool header_held() const override { return false; }
  void SetTrailers(const http::fields& trailers) override {
    if (trailers.begin() != trailers.end()) trailers_ = trailers;  // most responses have none
  }
  awaitable<void> SendWhole(http::response_header<> header, std::string_view body, beast::error_code& ec) override;
  void EndAfterResponse() override {}
  void OnClientReset(std::function<void()> abandon) override {
    on_reset_ = std::move(abandon);
    // Already reset before the exchange asked.
    if (closed_) Closed();
  }

 private:
  // Submits the response header, without its `skip` field and with `added_length` as its
  // Content-Length when not empty; `body`: a body follows (from ReadResponse).
  void Submit(const http::response_header<>& header, bool body, http::field skip, std::string_view added_length,
              beast::error_code& ec);

  Http2Connection& connection_;
  int32_t id_;
  asio::any_io_executor executor_;
  milliseconds idle_{60'000};

  Http2Inbox inbox_;  // the request body
  Http2Outbox outbox_;  // the response body; ended once the whole response is queued
  http::fields trailers_;  // sent after the body

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
    goaway_last_stream_ = nghttp2_session_get_last_proc_stream_id(session_);
    nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, goaway_last_stream_, NGHTTP2_NO_ERROR, nullptr, 0);
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
  int32_t goaway_last_stream_ = 0;  // the GOAWAY said streams after this one are not served
  bool writing_ = true;  // WriteLoop runs
  bool idling_ = true;  // IdleLoop runs
  Signal writer_wake_;
  std::optional<InFlight> unwritten_;
  Signal streams_done_;
  IdleWatch idle_;
};

// ---- Http2Stream

void Http2Stream::Finish() {
  finished_ = true;
  // What the exchange did not read will not be: give the client its window back.
  const size_t dropped = inbox_.Drop();
  if (!closed_ && dropped > 0) nghttp2_session_consume(connection_.session(), id_, dropped);
  if (closed_) return;
  if (!outbox_.done()) {
    nghttp2_submit_rst_stream(connection_.session(), NGHTTP2_FLAG_NONE, id_, NGHTTP2_INTERNAL_ERROR);
  } else if (!inbox_.ended()) {
    // RFC 9113 §8.1: a complete response before the request ended; the client may stop.
    nghttp2_submit_rst_stream(connection_.session(), NGHTTP2_FLAG_NONE, id_, NGHTTP2_NO_ERROR);
  }
  connection_.Flush();
}

std::optional<uint64_t> Http2Stream::body_length() const { return declared_length; }

net::Pending Http2Stream::ReadBody(std::string& out, beast::error_code& ec) {
  return inbox_.Read(out, kBodyPieceBytes, idle_,
                     [this](size_t n) {
                       nghttp2_session_consume(connection_.session(), id_, n);
                       connection_.Flush();
                     },
                     ec);
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
  const ssize_t n = outbox_.Take(buf, length, flags);
  if ((*flags & NGHTTP2_DATA_FLAG_EOF) && trailers_.begin() != trailers_.end()) {
    NvList nva;
    nva.AddFields(trailers_);
    // The trailers end the stream instead of this DATA frame.
    if (nghttp2_submit_trailer(connection_.session(), id_, nva.data(), nva.size()) == 0) {
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    }
  }
  return n;
}

void Http2Stream::Submit(const http::response_header<>& header, bool body, http::field skip,
                         std::string_view added_length, beast::error_code& ec) {
  if (closed_) {
    ec = asio::error::connection_reset;
    return;
  }
  NvList nva;
  const std::string status = std::to_string(header.result_int());
  nva.Add(":status", status);
  nva.AddFields(header, skip);
  if (!added_length.empty()) nva.Add("content-length", added_length);
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
  if (!body) outbox_.EndWithHeader();
  connection_.Flush();
}

net::Pending Http2Stream::SendHeader(const http::response_header<>& sent, bool has_body,
                                     std::optional<uint64_t> length, bool, beast::error_code& ec) {
  // With a body, its length as the exchange knows it (a body step may have changed it), or
  // none: the end of the stream frames it. The hop-by-hop fields stay out (NvList).
  http::field skip = http::field::unknown;
  std::string length_value;
  if (has_body) {
    skip = http::field::content_length;
    if (length) length_value = std::to_string(*length);
  }
  Submit(sent, has_body, skip, length_value, ec);
  return std::nullopt;
}

net::Pending Http2Stream::SendBody(std::string_view piece, bool last, beast::error_code& ec) {
  if (closed_) {
    ec = asio::error::connection_reset;
    return std::nullopt;
  }
  outbox_.Append(piece, last);
  nghttp2_session_resume_data(connection_.session(), id_);
  connection_.Flush();
  size_t limit = kSendBufferBytes;
  if (last) limit = 0;
  return outbox_.Drain(limit, idle_, ec);
}

awaitable<void> Http2Stream::SendWhole(http::response_header<> header, std::string_view body, beast::error_code& ec) {
  outbox_.Append(body, true);
  Submit(header, !body.empty(), http::field::unknown, "", ec);
  if (!ec) co_await outbox_.Drain(0, idle_, ec);
}

// ---- Http2Connection

bool Http2Connection::Start(const Limits& limits) {
  limits_ = limits;
  session_ = NewHttp2Session(true, {OnBeginHeaders, OnHeader, OnFrameRecv, OnDataChunk, OnStreamClose}, this,
                             {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, limits.http2_max_concurrent_streams},
                              {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, limits.max_header_bytes}});
  return session_ != nullptr;
}

awaitable<void> Http2Connection::Run(std::string initial) {
  {
    std::shared_ptr<const chains::ChainSet> current = env_.chains->Get();
    if (!Start(env_.chains->LimitsOf(current.get()))) co_return;
  }
  asio::co_spawn(stream_.get_executor(), WriteLoop(), asio::detached);
  asio::co_spawn(stream_.get_executor(), IdleLoop(limits_.downstream_idle_timeout), asio::detached);
  // What a read brought may need an answer (acknowledgements, window updates); most reads
  // need none, and the writer is not woken for them. While going away, every read wakes
  // it: a stream the read closed may have been the last.
  const ssize_t failed = co_await ReadFrames(stream_, session_, std::move(initial), [this] {
    if (going_away_ || nghttp2_session_want_write(session_)) Flush();
  });
  // A flood, a bad preface or a failed callback: say why and end.
  if (failed < 0) Terminate(failed == NGHTTP2_ERR_FLOODED ? NGHTTP2_ENHANCE_YOUR_CALM : NGHTTP2_PROTOCOL_ERROR);
  reading_ = false;
  // Every stream ends now; their exchanges see the stream closed.
  for (auto& [id, stream] : streams_) stream->Closed();
  Flush();
  idle_.Stop();
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
  // The reader may be waiting for bytes that no longer matter; the session then closes the
  // connection (and reads what the client still sends, so the close is not a reset).
  stream_.cancel();
  streams_done_.Notify();
}

awaitable<void> Http2Connection::IdleLoop(milliseconds idle) {
  // No exchange for the idle timeout: a GOAWAY, and the connection ends once its streams
  // have. Streams that still hold it one more idle timeout later have no exchange (a header
  // block never finished): it ends regardless.
  while (co_await idle_.Quiet(idle, [this] { return running_ > 0; })) {
    if (going_away_) {
      Terminate(NGHTTP2_NO_ERROR);
      break;
    }
    GoAway();
    idle_.Touch();
  }
  idling_ = false;
  streams_done_.Notify();
}

void Http2Connection::BeginStream(int32_t id) {
  auto stream = std::make_shared<Http2Stream>(*this, id, stream_.get_executor());
  stream->set_idle_timeout(limits_.downstream_idle_timeout);
  streams_[id] = std::move(stream);
  idle_.Touch();
}

void Http2Connection::StartExchange(const std::shared_ptr<Http2Stream>& stream) {
  if (going_away_ && stream->id() > goaway_last_stream_) {
    // Opened while the GOAWAY was on its way: the client will send it again elsewhere, so
    // it must not run here too.
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream->id(), NGHTTP2_REFUSED_STREAM);
    Flush();
    return;
  }
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
    idle_.Touch();
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
    stream->declared_length = ContentLength(stream->request);
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
  idle_.Touch();
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
