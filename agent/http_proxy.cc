#include "agent/http_proxy.h"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <exception>
#include <optional>
#include <vector>

#include "agent/body.h"
#include "agent/in_flight.h"
#include "agent/http_message.h"
#include "plugins/builtin/text.h"

namespace meshplug::agent {
namespace {

using net::awaitable;
using plugins::HttpContext;
using plugins::LocalResponse;
using plugins::Verdict;
using std::chrono::milliseconds;
using tcp = net::ip::tcp;

auto Ec(beast::error_code& ec) { return net::redirect_error(net::use_awaitable, ec); }

// Marks an endpoint as serving one more request, for least-request balancing.
class ActiveRequest {
 public:
  ActiveRequest(builtin::LoadBalancer* lb, std::optional<size_t> endpoint)
      : lb_(lb), endpoint_(endpoint) {
    if (lb_ && endpoint_) lb_->Started(*endpoint_);
  }
  ~ActiveRequest() {
    if (lb_ && endpoint_) lb_->Finished(*endpoint_);
  }
  ActiveRequest(const ActiveRequest&) = delete;
  ActiveRequest& operator=(const ActiveRequest&) = delete;

 private:
  builtin::LoadBalancer* lb_;
  std::optional<size_t> endpoint_;
};

template <bool isRequest>
awaitable<void> WriteHeader(beast::tcp_stream& stream, http::header<isRequest> header,
                            milliseconds timeout, beast::error_code& ec) {
  http::message<isRequest, http::empty_body> message(std::move(header));
  http::serializer<isRequest, http::empty_body> serializer(message);
  stream.expires_after(timeout);
  co_await http::async_write_header(stream, serializer, Ec(ec));
}

// Sets the framing fields of an outgoing header.
template <bool isRequest>
void SetFraming(http::header<isRequest>& header, Framing framing,
                boost::optional<uint64_t> length) {
  header.erase(http::field::transfer_encoding);
  if (framing == Framing::kChunked) {
    header.erase(http::field::content_length);
    header.set(http::field::transfer_encoding, "chunked");
  } else if (framing == Framing::kLength) {
    header.set(http::field::content_length, std::to_string(*length));
  } else if (framing == Framing::kClose) {
    header.erase(http::field::content_length);
  }
}

LocalResponse Error(unsigned status, std::string body) {
  return LocalResponse{status, {}, std::move(body) + "\n"};
}

// Why an upstream exchange produced no usable response.
struct UpstreamFailure {
  LocalResponse response;
  bool retriable = false;  // nothing of the request body was consumed
};

// How to talk to the routed cluster: its settings over the agent's defaults.
struct UpstreamSettings {
  const builtin::ClusterView* cluster = nullptr;  // nullptr: a module chose a bare address
  milliseconds connect_timeout;
  milliseconds request_timeout;  // the route's timeout when it has one
  milliseconds idle_timeout;
  uint32_t attempts = 1;
  milliseconds backoff_base{25};
};

// One request from header to the end of its response.
struct Exchange {
  std::shared_ptr<const ChainSet> chains;  // pinned for the whole request
  const HttpChain* chain = nullptr;
  HttpContext ctx;
  size_t ran = 0;  // chain[0, ran) ran their request steps
  bool keep_alive = true;  // downstream, after this response
  unsigned version = 11;
};

class HttpSession {
 public:
  HttpSession(tcp::socket socket, ProxyEnv env) : stream_(std::move(socket)), env_(env) {}

  awaitable<void> Run() {
    while (co_await ServeOne()) {
    }
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

 private:
  using RequestParser = http::request_parser<http::buffer_body>;
  using ResponseParser = http::response_parser<http::buffer_body>;

  // Serves one request; false when the connection must close.
  awaitable<bool> ServeOne();
  awaitable<bool> WaitForRequest(milliseconds idle_timeout);
  awaitable<void> RejectRequest(unsigned status, std::string reason);

  awaitable<std::optional<LocalResponse>> RunRequestSteps(Exchange& x);
  // nullopt, or a response that replaces the current one.
  awaitable<std::optional<LocalResponse>> RunResponseSteps(Exchange& x);
  void RunLogSteps(Exchange& x);
  std::vector<plugins::HttpPlugin*> Ran(const Exchange& x, bool reverse) const;

  awaitable<void> Forward(Exchange& x, RequestParser& request);
  UpstreamSettings SettingsFor(const Exchange& x) const;
  awaitable<std::unique_ptr<UpstreamConnection>> SendToUpstream(
      Exchange& x, RequestParser& request, const UpstreamSettings& settings,
      std::optional<UpstreamFailure>& failure);
  awaitable<void> ReadResponseHeader(const Exchange& x, UpstreamConnection& upstream,
                                     std::optional<ResponseParser>& response,
                                     milliseconds timeout, beast::error_code& ec);
  awaitable<void> Respond(Exchange& x, LocalResponse response, bool run_steps);
  awaitable<void> RelayResponse(Exchange& x, std::unique_ptr<UpstreamConnection> upstream,
                                ResponseParser& response);

  void Count(std::string_view name, std::string_view cluster) {
    env_.stats->Count(name, {{"cluster", cluster}});
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  ProxyEnv env_;
  // Set by Forward when the request body was not read to its end.
  bool request_body_unread_ = false;
};

awaitable<bool> HttpSession::WaitForRequest(milliseconds idle_timeout) {
  if (buffer_.size() > 0) co_return true;
  beast::error_code ec;
  stream_.expires_after(idle_timeout);
  size_t n = co_await stream_.async_read_some(buffer_.prepare(4096), Ec(ec));
  buffer_.commit(n);
  co_return !ec;
}

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

awaitable<bool> HttpSession::ServeOne() {
  std::shared_ptr<const ChainSet> chains = env_.chains->Get();
  Limits limits = chains ? chains->limits() : Limits{};
  if (!co_await WaitForRequest(limits.downstream_idle_timeout)) co_return false;
  InFlight in_flight(env_.in_flight);
  // The request runs on the set current when its first byte arrived.
  chains = env_.chains->Get();
  if (!chains) {
    co_await RejectRequest(503, "agent has no configuration yet");
    co_return false;
  }

  RequestParser parser;
  parser.header_limit(limits.max_header_bytes);
  parser.body_limit(kUnlimitedBody);
  beast::error_code ec;
  stream_.expires_after(limits.header_read_timeout);
  co_await http::async_read_header(stream_, buffer_, parser, Ec(ec));
  if (ec == http::error::end_of_stream || ec == net::error::eof ||
      ec == net::error::connection_reset || ec == beast::error::timeout) {
    co_return false;
  }
  // A slow client (beast::error::timeout) is disconnected: the timeout closed the socket.
  if (ec == http::error::header_limit) {
    co_await RejectRequest(431, "request header too large");
    co_return false;
  }
  if (ec) {
    co_await RejectRequest(400, builtin::Cat("bad request: ", ec.message()));
    co_return false;
  }
  if (FieldCount(parser.get().base()) > limits.max_header_count) {
    co_await RejectRequest(431, "too many request header fields");
    co_return false;
  }
  if (std::string why = UnsafeFraming(parser.get().base()); !why.empty()) {
    co_await RejectRequest(400, "bad request: " + why);
    co_return false;
  }

  Exchange x;
  x.chains = chains;
  x.chain = &chains->http(env_.inbound);
  x.ctx.request = parser.get().base();
  if (!NormalizeTarget(x.ctx.request)) {
    co_await RejectRequest(400, "bad request: malformed absolute target");
    co_return false;
  }
  x.ctx.workload = &chains->workload();
  x.ctx.configs = &chains->mesh();
  x.version = parser.get().version();
  x.keep_alive = parser.get().keep_alive() && !env_.draining->load();
  request_body_unread_ = !parser.is_done();

  std::optional<LocalResponse> local = co_await RunRequestSteps(x);
  if (local) {
    co_await Respond(x, std::move(*local), true);
  } else {
    co_await Forward(x, parser);
  }
  RunLogSteps(x);
  co_return x.keep_alive && !request_body_unread_ && !env_.draining->load();
}

std::vector<plugins::HttpPlugin*> HttpSession::Ran(const Exchange& x, bool reverse) const {
  std::vector<plugins::HttpPlugin*> out;
  for (size_t i = 0; i < x.ran; ++i) out.push_back((*x.chain)[i].plugin.get());
  if (reverse) std::reverse(out.begin(), out.end());
  return out;
}

// nullopt when a module forwarded the request; else the local response to send.
awaitable<std::optional<LocalResponse>> HttpSession::RunRequestSteps(Exchange& x) {
  for (const auto& entry : *x.chain) {
    ++x.ran;
    Verdict v;
    try {
      v = co_await entry.plugin->OnRequestHeaders(x.ctx);
    } catch (const std::exception& e) {
      env_.stats->Count("meshplug_plugin_errors_total", {{"plugin", entry.name}});
      co_return Error(500, builtin::Cat("plugin ", entry.name, " failed: ", e.what()));
    }
    if (v.kind == Verdict::Kind::kRespond) co_return std::move(v.response);
    if (v.kind == Verdict::Kind::kForward) co_return std::nullopt;
  }
  co_return Error(404, "no module of the chain answered");
}

awaitable<std::optional<LocalResponse>> HttpSession::RunResponseSteps(Exchange& x) {
  for (plugins::HttpPlugin* plugin : Ran(x, true)) {
    Verdict v;
    try {
      v = co_await plugin->OnResponseHeaders(x.ctx);
    } catch (const std::exception& e) {
      env_.stats->Count("meshplug_plugin_errors_total", {{"plugin", plugin->name()}});
      co_return Error(500, builtin::Cat("plugin ", plugin->name(), " failed: ", e.what()));
    }
    if (v.kind == Verdict::Kind::kRespond) co_return std::move(v.response);
  }
  co_return std::nullopt;
}

void HttpSession::RunLogSteps(Exchange& x) {
  for (plugins::HttpPlugin* plugin : Ran(x, false)) {
    try {
      plugin->OnLog(x.ctx);
    } catch (const std::exception&) {
      env_.stats->Count("meshplug_plugin_errors_total", {{"plugin", plugin->name()}});
    }
  }
}

// Sends a response the agent makes itself; with `run_steps`, the response steps may
// still replace it once.
awaitable<void> HttpSession::Respond(Exchange& x, LocalResponse response, bool run_steps) {
  auto set_response = [&](const LocalResponse& r) {
    http::response_header<> header(r.headers);
    header.result(r.status);
    header.version(11);
    x.ctx.response = std::move(header);
  };
  set_response(response);
  if (run_steps) {
    if (std::optional<LocalResponse> replaced = co_await RunResponseSteps(x)) {
      response = std::move(*replaced);
      set_response(response);
    }
  }
  std::string body = std::move(response.body);
  BodyFilters filters(Ran(x, true), false, x.chains->limits().max_buffered_body_bytes);
  if (!filters.empty()) {
    Verdict v = co_await filters.Run(x.ctx, body, true);
    if (v.kind == Verdict::Kind::kRespond) body = std::move(v.response.body);
  }
  http::response_header<> header = *x.ctx.response;
  RemoveHopByHop(header);
  bool head = x.ctx.request.method() == http::verb::head;
  SetFraming(header, Framing::kLength, body.size());
  if (!header.count(http::field::content_type) && !body.empty()) {
    header.set(http::field::content_type, "text/plain");
  }
  // A request body nobody read would be parsed as the next request.
  if (request_body_unread_) x.keep_alive = false;
  SetKeepAlive(header, x.keep_alive);
  beast::error_code ec;
  milliseconds idle = x.chains->limits().downstream_idle_timeout;
  co_await WriteHeader(stream_, std::move(header), idle, ec);
  if (!ec && !head && !body.empty()) {
    stream_.expires_after(idle);
    co_await net::async_write(stream_, net::buffer(body), Ec(ec));
  }
  if (ec) x.keep_alive = false;
}

UpstreamSettings HttpSession::SettingsFor(const Exchange& x) const {
  const Limits& limits = x.chains->limits();
  UpstreamSettings out{nullptr, limits.connect_timeout, limits.request_timeout,
                       limits.upstream_idle_timeout};
  const builtin::ClusterView* cluster = x.chains->mesh().FindCluster(x.ctx.upstream->cluster);
  if (cluster != nullptr) {
    const v1::Cluster& c = cluster->config;
    out.cluster = cluster;
    out.connect_timeout =
        builtin::DurationOr(c.connect_timeout(), c.has_connect_timeout(), out.connect_timeout);
    out.request_timeout =
        builtin::DurationOr(c.request_timeout(), c.has_request_timeout(), out.request_timeout);
    out.idle_timeout = builtin::DurationOr(c.idle_timeout(), c.has_idle_timeout(), out.idle_timeout);
    out.attempts = 1 + c.retry().num_retries();
    out.backoff_base = builtin::DurationOr(c.retry().backoff_base(), c.retry().has_backoff_base(),
                                           out.backoff_base);
  }
  if (const builtin::ServiceView* service = x.chains->mesh().FindServiceByName(x.ctx.service)) {
    for (const builtin::RouteView& route : service->routes) {
      if (route.config->name() == x.ctx.route && route.config->has_timeout()) {
        out.request_timeout = builtin::DurationOr(route.config->timeout(), true, out.request_timeout);
      }
    }
  }
  return out;
}

// Reads the final response header; 1xx interim responses (100 Continue, 103 Early Hints)
// are not forwarded.
awaitable<void> HttpSession::ReadResponseHeader(const Exchange& x, UpstreamConnection& upstream,
                                                std::optional<ResponseParser>& response,
                                                milliseconds timeout, beast::error_code& ec) {
  upstream.stream.expires_after(timeout);
  do {
    response.emplace();
    response->header_limit(x.chains->limits().max_header_bytes);
    response->body_limit(kUnlimitedBody);
    // A response to HEAD has no body whatever its Content-Length says.
    response->skip(x.ctx.request.method() == http::verb::head);
    co_await http::async_read_header(upstream.stream, upstream.buffer, *response, Ec(ec));
  } while (!ec && response->get().result_int() / 100 == 1);
}

awaitable<void> HttpSession::Forward(Exchange& x, RequestParser& request) {
  if (!x.ctx.upstream || x.ctx.upstream->port == 0) {
    co_return co_await Respond(x, Error(503, "no upstream endpoint chosen"), true);
  }
  UpstreamSettings settings = SettingsFor(x);
  const builtin::ClusterView* cluster = settings.cluster;
  // Statuses are retried only when there is no body to replay.
  bool replayable = request.is_done();
  std::optional<UpstreamFailure> failure;
  for (uint32_t attempt = 0; attempt < settings.attempts; ++attempt) {
    if (attempt > 0) {
      Count("meshplug_upstream_retries_total", x.ctx.upstream->cluster);
      // min(base, 1s) × min(10, 2^(n-1)), as osm-edge does.
      auto delay = std::min(settings.backoff_base, milliseconds(1000)) *
                   std::min(10u, 1u << std::min(attempt - 1, 4u));
      net::steady_timer timer(stream_.get_executor(), delay);
      beast::error_code ec;
      co_await timer.async_wait(Ec(ec));
    }
    std::optional<size_t> endpoint;
    if (cluster) {
      endpoint = cluster->lb->IndexOf(x.ctx.upstream->host, x.ctx.upstream->port);
      if (attempt > 0) {
        endpoint = cluster->lb->Pick(endpoint);
        if (!endpoint) break;
        x.ctx.upstream->host = cluster->lb->endpoint(*endpoint).address();
        x.ctx.upstream->port = static_cast<uint16_t>(cluster->lb->endpoint(*endpoint).port());
      }
    }
    ActiveRequest active(cluster ? cluster->lb.get() : nullptr, endpoint);
    failure.reset();
    std::unique_ptr<UpstreamConnection> upstream =
        co_await SendToUpstream(x, request, settings, failure);
    if (!upstream) {
      if (failure->retriable) continue;
      break;
    }
    std::optional<ResponseParser> response;
    beast::error_code ec;
    co_await ReadResponseHeader(x, *upstream, response, settings.request_timeout, ec);
    if (ec == beast::error::timeout) {
      Count("meshplug_upstream_timeouts_total", x.ctx.upstream->cluster);
      failure = UpstreamFailure{Error(504, "upstream request timeout"), false};
      break;
    }
    if (ec) {
      failure = UpstreamFailure{Error(502, "bad upstream response: " + ec.message()), false};
      break;
    }
    if (FieldCount(response->get().base()) > x.chains->limits().max_header_count) {
      failure = UpstreamFailure{Error(502, "upstream response has too many header fields"), false};
      break;
    }
    const auto& retry_on = cluster ? cluster->config.retry().retry_on_status()
                                   : google::protobuf::RepeatedField<uint32_t>();
    if (replayable && attempt + 1 < settings.attempts &&
        std::find(retry_on.begin(), retry_on.end(), response->get().result_int()) !=
            retry_on.end()) {
      continue;
    }
    co_return co_await RelayResponse(x, std::move(upstream), *response);
  }
  if (!failure) failure = UpstreamFailure{Error(503, "no healthy upstream"), false};
  co_await Respond(x, std::move(failure->response), true);
}

// Connects (or reuses a connection) and sends the request header and body. nullptr with
// `failure` set when no response can be read.
awaitable<std::unique_ptr<UpstreamConnection>> HttpSession::SendToUpstream(
    Exchange& x, RequestParser& request, const UpstreamSettings& settings,
    std::optional<UpstreamFailure>& failure) {
  const Limits& limits = x.chains->limits();
  bool has_body = !request.is_done();
  BodyFilters filters(Ran(x, false), true, limits.max_buffered_body_bytes);

  http::request_header<> header = x.ctx.request;
  bool expect_continue = has_body && x.version >= 11 &&
                         beast::iequals(header[http::field::expect], "100-continue");
  if (expect_continue) header.erase(http::field::expect);
  RemoveHopByHop(header);
  Framing framing = Framing::kNone;
  if (has_body) {
    framing = request.content_length() && filters.empty() ? Framing::kLength : Framing::kChunked;
  } else if (request.content_length()) {
    framing = Framing::kLength;  // keeps "Content-Length: 0", which some servers require
  }
  SetFraming(header, framing, request.content_length());
  header.version(11);
  SetKeepAlive(header, true);

  // A pooled connection the peer closed while we wrote is retried once on a new one; it
  // is only detectable before any body byte was consumed.
  for (int fresh_attempt = 0; fresh_attempt < 2; ++fresh_attempt) {
    bool reused = false;
    beast::error_code ec;
    std::unique_ptr<UpstreamConnection> upstream = co_await env_.pool->Acquire(
        x.ctx.upstream->host, x.ctx.upstream->port, settings.connect_timeout,
        settings.idle_timeout, reused, ec);
    if (!upstream) {
      Count("meshplug_upstream_connect_failures_total", x.ctx.upstream->cluster);
      failure = UpstreamFailure{Error(503, builtin::Cat("upstream connect failed: ", ec.message())),
                                true};
      co_return nullptr;
    }
    ++upstream->requests;
    co_await WriteHeader(upstream->stream, header, limits.downstream_idle_timeout, ec);
    if (ec) {
      if (reused) continue;
      failure = UpstreamFailure{Error(503, builtin::Cat("upstream write failed: ", ec.message())),
                                true};
      co_return nullptr;
    }
    if (!has_body) co_return upstream;

    if (expect_continue) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      stream_.expires_after(limits.downstream_idle_timeout);
      co_await net::async_write(stream_, net::buffer(kContinue), Ec(ec));
      if (ec) {
        x.keep_alive = false;
        failure = UpstreamFailure{Error(400, "client went away"), false};
        co_return nullptr;
      }
    }
    BodySource<true> source(stream_, buffer_, request, limits.downstream_idle_timeout);
    BodySink sink(upstream->stream, framing, settings.idle_timeout);
    std::string piece;
    while (true) {
      co_await source.Next(piece, ec);
      if (ec) {
        x.keep_alive = false;
        failure = UpstreamFailure{Error(400, builtin::Cat("bad request body: ", ec.message())),
                                  false};
        co_return nullptr;
      }
      bool last = source.done();
      request_body_unread_ = !last;
      if (!filters.empty()) {
        Verdict v = co_await filters.Run(x.ctx, piece, last);
        if (v.kind == Verdict::Kind::kRespond) {
          failure = UpstreamFailure{std::move(v.response), false};
          co_return nullptr;
        }
      }
      co_await sink.Write(piece, ec);
      if (!ec && last) co_await sink.Finish(ec);
      if (ec) {
        failure = UpstreamFailure{Error(502, builtin::Cat("upstream write failed: ", ec.message())),
                                  false};
        co_return nullptr;
      }
      if (last) co_return upstream;
    }
  }
  failure = UpstreamFailure{Error(503, "upstream closed kept-alive connections"), true};
  co_return nullptr;
}

awaitable<void> HttpSession::RelayResponse(Exchange& x,
                                           std::unique_ptr<UpstreamConnection> upstream,
                                           ResponseParser& response) {
  x.ctx.response = response.get().base();
  if (std::optional<LocalResponse> replaced = co_await RunResponseSteps(x)) {
    co_return co_await Respond(x, std::move(*replaced), false);
  }
  const Limits& limits = x.chains->limits();
  BodyFilters filters(Ran(x, true), false, limits.max_buffered_body_bytes);
  bool has_body = !response.is_done();
  Framing framing = Framing::kNone;
  if (has_body) {
    if (response.content_length() && filters.empty()) {
      framing = Framing::kLength;
    } else if (x.version >= 11) {
      framing = Framing::kChunked;
    } else {
      framing = Framing::kClose;
      x.keep_alive = false;
    }
  }
  http::response_header<> header = *x.ctx.response;
  bool upstream_keep_alive = KeepAlive(header);
  RemoveHopByHop(header);
  SetFraming(header, framing, response.content_length());
  if (request_body_unread_) x.keep_alive = false;
  header.version(11);
  SetKeepAlive(header, x.keep_alive);

  beast::error_code ec;
  milliseconds idle = limits.downstream_idle_timeout;
  co_await WriteHeader(stream_, std::move(header), idle, ec);
  if (!ec && has_body) {
    BodySource<false> source(upstream->stream, upstream->buffer, response, idle);
    BodySink sink(stream_, framing, idle);
    std::string piece;
    while (!ec) {
      co_await source.Next(piece, ec);
      if (ec) break;
      bool last = source.done();
      if (!filters.empty()) {
        Verdict v = co_await filters.Run(x.ctx, piece, last);
        // The header is gone; a body step can only end the response early.
        if (v.kind == Verdict::Kind::kRespond) ec = net::error::operation_aborted;
      }
      if (!ec) co_await sink.Write(piece, ec);
      if (!ec && last) {
        co_await sink.Finish(ec);
        break;
      }
    }
  }
  if (ec) {
    // A response cut short downstream can only be signalled by closing.
    x.keep_alive = false;
    co_return;
  }
  const builtin::ClusterView* cluster = x.chains->mesh().FindCluster(x.ctx.upstream->cluster);
  uint32_t max_requests = cluster ? cluster->config.max_requests_per_connection() : 0;
  if (response.is_done() && upstream_keep_alive &&
      (max_requests == 0 || upstream->requests < max_requests)) {
    env_.pool->Release(std::move(upstream));
  }
}

}  // namespace

awaitable<void> ServeHttpConnection(tcp::socket socket, ProxyEnv env) {
  beast::error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  HttpSession session(std::move(socket), env);
  co_await session.Run();
}

}  // namespace meshplug::agent
