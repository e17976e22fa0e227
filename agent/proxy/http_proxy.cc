#include "agent/proxy/http_proxy.h"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/write.hpp>
#include <algorithm>
#include <array>
#include <optional>

#include "agent/proxy/body.h"
#include "agent/proxy/exchange.h"
#include "agent/proxy/http2_session.h"
#include "agent/proxy/http_message.h"
#include "agent/proxy/in_flight.h"
#include "agent/proxy/relay.h"
#include "agent/proxy/tcp_proxy.h"
#include "common/strings.h"
#include "net/read_http.h"

namespace meshplug::agent::proxy {
namespace {

using asio::awaitable;
using std::chrono::milliseconds;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using RequestParser = http::request_parser<http::buffer_body>;

auto Ec(beast::error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }


// When a connection ends, the agent keeps reading (and dropping) what the client still
// sends, for at most this long and this much, so that closing with unread bytes does not
// reset the connection under a response the client has not read yet (RFC 9112 §9.6).
constexpr milliseconds kLingerTime{2'000};
constexpr size_t kLingerBytes = 1 << 20;

// An HTTP/1.1 connection: requests one after another, each the Downstream of its exchange.
// A connection that starts with HTTP/2's preface is handed to the HTTP/2 session.
class HttpSession : public Downstream {
 public:
  HttpSession(tcp::socket socket, ProxyEnv env) : stream_(std::move(socket)), env_(env) {}

  awaitable<void> Run() {
    // Not `while (co_await ServeOne()) {}`: followed by another co_await, GCC 12.2
    // compiles that into a frame that traps (ud2) when resumed.
    bool more = true;
    if (env_.inbound) more = co_await AcceptInbound();
    if (more) {
      const Preface preface = co_await ReadPreface();
      if (preface == Preface::kHttp2) {
        co_await ServeHttp2(stream_, TakeBuffered(buffer_), env_, peer_identity_);
        co_await Close();
        co_return;
      }
      more = preface == Preface::kHttp1;
    }
    while (more) {
      more = co_await ServeOne();
    }
    co_await Close();
  }

  // Downstream, for the request being served.
  asio::any_io_executor executor() override { return stream_.get_executor(); }
  bool body_done() const override { return parser_->is_done(); }
  std::optional<uint64_t> body_length() const override {
    return parser_->content_length() ? std::optional<uint64_t>(*parser_->content_length()) : std::nullopt;
  }
  net::Pending ReadBody(std::string& out, beast::error_code& ec) override { return source_->Next(out, ec); }
  void CancelRead() override { stream_.cancel(); }
  awaitable<void> SendContinue(beast::error_code& ec) override;
  net::Pending SendHeader(const http::response_header<>& header, bool has_body, std::optional<uint64_t> length, bool hold,
                             beast::error_code& ec) override;
  net::Pending SendBody(std::string_view piece, bool last, beast::error_code& ec) override {
    return sink_->Write(piece, last, ec);
  }
  bool header_held() const override { return sink_ && sink_->header_pending(); }
  void SetTrailers(const http::fields& trailers) override {
    if (sink_) sink_->set_trailers(trailers);
  }
  awaitable<void> SendWhole(http::response_header<> header, std::string_view body, beast::error_code& ec) override;
  void EndAfterResponse() override { keep_alive_ = false; }
  awaitable<void> SendSwitch(http::response_header<> header, beast::error_code& ec) override;
  awaitable<RelayEnd> RelaySwitched(net::UpstreamConnection& upstream, RelayTimeouts timeouts) override;

 private:
  enum class Preface { kHttp1, kHttp2, kNone };

  // Serves one request; false when the connection must close.
  awaitable<bool> ServeOne();
  // An inbound connection's first bytes: a TLS hello is answered with the workload
  // certificate (mTLS: the client's must verify against the mesh's roots); plaintext is
  // served only in permissive mode. False when the connection must close.
  awaitable<bool> AcceptInbound();
  // Reads until the first bytes tell HTTP/2's connection preface from an HTTP/1.1
  // request (kNone: the client sent nothing or went away).
  awaitable<Preface> ReadPreface();
  // An inbound CONNECT: a tunnel from another agent to a TCP port of this workload's
  // services, over mTLS only; the connection ends with it.
  awaitable<void> AcceptTunnel(std::shared_ptr<const chains::ChainSet> chains, const http::request_header<>& head);
  void CountHandshake(std::string_view direction, std::string_view result);
  awaitable<void> RejectRequest(unsigned status, std::string reason);
  // Reads what the client sends next into buffer_'s free room within `timeout`; the
  // caller commits the count. An awaitable, not a coroutine: the keep-alive wait runs it
  // for every request.
  auto ReadSome(milliseconds timeout, beast::error_code& ec) {
    stream_.expires_after(timeout);
    return stream_.async_read_some(buffer_.prepare(4096), Ec(ec));
  }
  // The idle timeout of the current set (the flag's before any configuration).
  milliseconds CurrentIdleTimeout() const {
    return env_.chains->LimitsOf(env_.chains->Get().get()).downstream_idle_timeout;
  }
  awaitable<void> Close();

  net::Stream stream_;
  beast::flat_buffer buffer_;  // capped (ReadBufferLimit) for each request
  ProxyEnv env_;
  std::string peer_identity_;  // the client's SPIFFE ID on an mTLS connection

  // The request being served.
  RequestParser* parser_ = nullptr;
  std::optional<BodySource<true>> source_;
  std::optional<BodySink> sink_;
  bool keep_alive_ = true;  // after this response
  unsigned version_ = 11;
  milliseconds idle_{0};  // downstream idle timeout
};

awaitable<void> HttpSession::RejectRequest(unsigned status, std::string reason) {
  http::response<http::string_body> res{static_cast<http::status>(status), 11};
  res.set(http::field::connection, "close");
  res.set(http::field::content_type, "text/plain");
  res.body() = std::move(reason) + "\n";
  res.prepare_payload();
  beast::error_code ec;
  stream_.expires_after(std::chrono::seconds(5));
  co_await http::async_write(stream_, res, Ec(ec));
}

awaitable<void> HttpSession::Close() {
  beast::error_code ec;
  if (net::Pending rest = net::Flush(stream_, ec)) co_await std::move(*rest);
  if (ec) co_return;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  if (ec) co_return;  // already closed (a timeout, a reset)
  auto deadline = Clock::now() + kLingerTime;
  std::array<char, 16 * 1024> scratch;
  for (size_t drained = 0; drained < kLingerBytes && Clock::now() < deadline;) {
    stream_.expires_at(deadline);
    drained += co_await stream_.async_read_some(asio::buffer(scratch), Ec(ec));
    if (ec) break;
  }
}

void HttpSession::CountHandshake(std::string_view direction, std::string_view result) {
  env_.stats->Count("meshplug_agent_tls_handshakes_total", {{"direction", direction}, {"result", result}});
}

awaitable<bool> HttpSession::AcceptInbound() {
  std::shared_ptr<const chains::ChainSet> current = env_.chains->Get();
  const Limits limits = env_.chains->LimitsOf(current.get());
  // Without a configuration the mode is unknown: only mTLS is served.
  const bool strict = !current || current->snapshot().settings().mtls_mode() == v1::MTLS_STRICT;
  beast::error_code ec;
  const size_t n = co_await ReadSome(limits.header_read_timeout, ec);
  buffer_.commit(n);
  if (ec) co_return false;
  const bool hello = static_cast<const unsigned char*>(buffer_.data().data())[0] == net::kTlsHandshakeRecord;
  if (!hello) {
    if (strict) CountHandshake("inbound", "plaintext refused");
    co_return !strict;
  }
  const net::TlsContexts tls = env_.tls ? env_.tls->Get() : net::TlsContexts{};
  if (!tls.server) {
    CountHandshake("inbound", "no certificate");
    co_return false;
  }
  size_t used = 0;
  co_await net::ServerHandshake(stream_, tls.server, buffer_.data(), used, ec);
  buffer_.consume(used);
  if (ec) {
    CountHandshake("inbound", ec.message());
    co_return false;
  }
  peer_identity_ = net::PeerIdentity(stream_);
  CountHandshake("inbound", "ok");
  co_return true;
}

awaitable<void> HttpSession::AcceptTunnel(std::shared_ptr<const chains::ChainSet> chains,
                                          const http::request_header<>& head) {
  auto refuse = [this](std::string_view result, unsigned status, std::string reason) -> awaitable<void> {
    CountTunnel(*env_.stats, true, result);
    co_await RejectRequest(status, std::move(reason));
  };
  if (peer_identity_.empty()) {
    co_await refuse("plaintext refused", 403, "a tunnel (CONNECT) is only for agents, over mTLS");
    co_return;
  }
  // "<service>:<port>", a port of one of this workload's services.
  const std::string_view target = head.target();
  const size_t colon = target.rfind(':');
  const std::optional<uint16_t> port = colon == std::string_view::npos ? std::nullopt : ParsePort(target.substr(colon + 1));
  const std::optional<routing::TcpPortView> found =
      port ? chains->mesh().FindServicePort(target.substr(0, colon), *port, /*inbound=*/true) : std::nullopt;
  if (!found) {
    co_await refuse("no such port", 404, Cat("no service port ", target, " on this workload"));
    co_return;
  }
  if (found->port->protocol() != v1::PROTOCOL_TCP) {
    // Its requests must meet the inbound HTTP chain (and its plugins), not pass as bytes.
    co_await refuse("http port", 403, Cat(target, " is an HTTP port: it is not tunnelled"));
    co_return;
  }
  TcpArrival arrival;
  arrival.chains = std::move(chains);
  arrival.tunnel = true;
  arrival.service = found->service->config->name();
  arrival.service_port = *port;
  arrival.peer_identity = peer_identity_;
  arrival.initial = TakeBuffered(buffer_);
  stream_.expires_never();
  co_await ServeTcpTunnel(stream_, env_, std::move(arrival));
}


awaitable<bool> HttpSession::ServeOne() {
  if (buffer_.size() == 0) {  // waiting for the next request: the idle timeout, then a quiet close
    beast::error_code ec;
    const size_t n = co_await ReadSome(CurrentIdleTimeout(), ec);
    buffer_.commit(n);
    if (ec) co_return false;
  }
  InFlight in_flight(env_.in_flight);
  // The request runs on the set current when its first byte arrived, and takes every
  // limit from that same set.
  std::shared_ptr<const chains::ChainSet> chains = env_.chains->Get();
  if (!chains) {
    co_await RejectRequest(503, "agent has no configuration yet");
    co_return false;
  }
  const Limits& limits = chains->limits();
  buffer_.max_size(std::max(buffer_.size(), ReadBufferLimit(limits.max_header_bytes)));

  RequestParser parser;
  parser.header_limit(limits.max_header_bytes);
  parser.body_limit(kUnlimitedBody);
  beast::error_code ec;
  if (net::Pending rest = net::StartReadHttp(stream_, buffer_, parser, net::ParseUntil::kHeaderDone,
                                             limits.header_read_timeout, ec)) {
    co_await std::move(*rest);
  }
  // A slow client (beast::error::timeout) is disconnected: the timeout closed the socket.
  if (ec == http::error::end_of_stream || ec == asio::error::eof ||
      ec == asio::error::connection_reset || ec == beast::error::timeout) {
    co_return false;
  }
  if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
    co_await RejectRequest(431, "request header too large");
    co_return false;
  }
  if (ec) {
    co_await RejectRequest(400, Cat("bad request: ", ec.message()));
    co_return false;
  }
  const http::request_header<>& head = parser.get().base();
  if (FieldCount(head) > limits.max_header_count) {
    co_await RejectRequest(431, "too many request header fields");
    co_return false;
  }

  if (head.method() == http::verb::connect) {
    if (env_.inbound) {
      co_await AcceptTunnel(chains, head);
    } else {
      // An app's CONNECT would open a raw tunnel under this workload's identity.
      co_await RejectRequest(405, "CONNECT is not proxied: call the service by its name or address");
    }
    co_return false;
  }

  const std::string upgrade = parser.is_done() ? UpgradeProtocol(head) : "";
  version_ = head.version();
  keep_alive_ = KeepAlive(head) && !env_.draining->load();
  ExchangeStart start;
  std::optional<Rejection> rejection = CheckRequestFraming(head);
  if (!rejection) rejection = CheckHost(head);
  if (!rejection) {
    // From here the parser reads only the body (and trailers, into its emptied header):
    // the exchange takes the header instead of a copy.
    start.request = std::move(parser.get().base());
    rejection = NormalizeTarget(start.request);
  }
  if (rejection) {
    co_await RejectRequest(rejection->status, std::move(rejection->reason));
    co_return false;
  }
  RemoveConnectionOptions(start.request);
  if (!upgrade.empty()) {
    start.upgrade_asked = true;
    start.request.set(http::field::upgrade, upgrade);
  }
  start.chains = chains;
  start.peer_identity = peer_identity_;
  idle_ = limits.downstream_idle_timeout;
  parser_ = &parser;
  source_.emplace(stream_, buffer_, parser, idle_);
  sink_.reset();
  co_await ServeExchange(env_, *this, std::move(start));
  const bool body_read = parser.is_done();
  parser_ = nullptr;
  source_.reset();
  sink_.reset();
  co_return keep_alive_ && body_read && !env_.draining->load();
}

awaitable<HttpSession::Preface> HttpSession::ReadPreface() {
  const milliseconds idle = CurrentIdleTimeout();
  constexpr std::string_view kPreface = kHttp2Preface;
  while (true) {
    const std::string_view got(static_cast<const char*>(buffer_.data().data()),
                               std::min(buffer_.size(), kPreface.size()));
    if (got != kPreface.substr(0, got.size())) co_return Preface::kHttp1;
    if (got.size() == kPreface.size()) co_return Preface::kHttp2;
    beast::error_code ec;
    const size_t n = co_await ReadSome(idle, ec);
    buffer_.commit(n);
    // What came before the error is served: HTTP/1.1 answers a partial request itself.
    if (ec) co_return buffer_.size() == 0 ? Preface::kNone : Preface::kHttp1;
  }
}

awaitable<void> HttpSession::SendContinue(beast::error_code& ec) {
  // RFC 9110 §10.1.1: never to an HTTP/1.0 client.
  if (version_ < 11) co_return;
  static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
  stream_.expires_after(idle_);
  co_await asio::async_write(stream_, asio::buffer(kContinue), Ec(ec));
}

net::Pending HttpSession::SendHeader(const http::response_header<>& header, bool has_body, std::optional<uint64_t> length,
                                     bool hold, beast::error_code& ec) {
  Framing framing = Framing::kNone;
  if (has_body) {
    if (length) {
      framing = Framing::kLength;
    } else if (version_ >= 11) {
      framing = Framing::kChunked;
    } else {
      framing = Framing::kClose;
      keep_alive_ = false;
    }
  }
  sink_.emplace(stream_, framing, idle_,
                OutgoingHeaderBytes(header, OutgoingFields{framing, length, keep_alive_, {}, false}));
  // Chunked bodies (the upstream's buffer may hold only a chunk-size line) get the header
  // at once.
  if (hold && framing == Framing::kLength) {
    ec = {};
    return std::nullopt;
  }
  return sink_->WriteHeader(ec);
}

awaitable<void> HttpSession::SendWhole(http::response_header<> header, std::string_view body, beast::error_code& ec) {
  // A request body nobody read would be parsed as the next request.
  if (parser_ && !parser_->is_done()) keep_alive_ = false;
  header.version(11);
  SetKeepAlive(header, keep_alive_);
  const std::string head = HeaderBytes(header);
  if (net::Pending rest = WriteMessage(stream_, head, body, idle_, ec)) co_await std::move(*rest);
}

awaitable<void> HttpSession::SendSwitch(http::response_header<> header, beast::error_code& ec) {
  header.version(11);
  const std::string head = HeaderBytes(header);
  if (net::Pending rest = net::StartWrite(stream_, asio::buffer(head), idle_, ec)) co_await std::move(*rest);
}

awaitable<RelayEnd> HttpSession::RelaySwitched(net::UpstreamConnection& upstream, RelayTimeouts timeouts) {
  stream_.expires_never();
  upstream.stream.expires_never();
  // Bytes read past either header are the new protocol's first.
  std::string from_client = TakeBuffered(buffer_);
  std::string from_upstream = TakeBuffered(upstream.buffer);
  co_return co_await Relay(stream_, std::move(from_client), upstream.stream, std::move(from_upstream), timeouts);
}

}  // namespace

awaitable<void> ServeHttpConnection(tcp::socket socket, ProxyEnv env) {
  beast::error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  HttpSession session(std::move(socket), env);
  co_await session.Run();
}

}  // namespace meshplug::agent::proxy
