#include "agent/proxy/exchange.h"

#include "plugins/api/http_fields.h"
#include "plugins/api/traffic_labels.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/string.hpp>
#include <algorithm>
#include <exception>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/proxy/body.h"
#include "agent/proxy/grpc.h"
#include "agent/proxy/http2_upstream.h"
#include "agent/proxy/http_message.h"
#include "common/random.h"
#include "common/route_rules.h"
#include "common/strings.h"
#include "net/read_http.h"

namespace meshplug::agent::proxy {
namespace {

using asio::awaitable;
using plugins::HttpContext;
using plugins::LocalResponse;
using plugins::Verdict;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using ResponseParser = http::response_parser<http::buffer_body>;

auto Ec(beast::error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }



// Marks an endpoint as serving one more request, for least-request balancing.
class ActiveRequest {
 public:
  ActiveRequest(routing::LoadBalancer* lb, std::optional<size_t> endpoint)
      : lb_(lb), endpoint_(endpoint) {
    if (lb_ && endpoint_) lb_->Started(*endpoint_);
  }
  ~ActiveRequest() {
    if (lb_ && endpoint_) lb_->Finished(*endpoint_);
  }
  ActiveRequest(const ActiveRequest&) = delete;
  ActiveRequest& operator=(const ActiveRequest&) = delete;

 private:
  routing::LoadBalancer* lb_;
  std::optional<size_t> endpoint_;
};


LocalResponse Error(unsigned status, std::string body) {
  return LocalResponse{status, {}, std::move(body) + "\n"};
}

// The one status check for responses the agent makes: 200–599, anything else becomes 500
// (a 1xx would leave the client waiting for a final response; Beast throws above 999).
unsigned SendableStatus(unsigned status) {
  return status >= 200 && status <= 599 ? status : 500;
}

// RFC 9110 §15.3.5, §15.4.5: 204 and 304 responses end with their header.
bool WithoutContent(unsigned status) { return status == 204 || status == 304; }

// A response that has no body whatever its header says: a 204, a 304, or one to HEAD.
bool Bodiless(unsigned status, http::verb method) { return WithoutContent(status) || method == http::verb::head; }

// Whether `name` is x-forwarded-client-cert in any case, '_' for '-' included: CGI and
// WSGI apps read those spellings as the same header.
bool IsForwardedClientCert(std::string_view name) {
  constexpr std::string_view kName = "x-forwarded-client-cert";
  if (name.size() != kName.size()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    if (c == '_') {
      c = '-';
    } else if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
    if (c != kName[i]) return false;
  }
  return true;
}

// The inbound caller's verified identity for the app, in Envoy's x-forwarded-client-cert
// form (URI element only), when the mesh asks for it. What a caller sent in that header is
// dropped: in permissive mode anyone could claim an identity with it.
void SetForwardedClientCert(http::request_header<>& request, const std::string& peer_identity, bool forward) {
  plugins::EraseFields(request, [](const auto& f) { return IsForwardedClientCert(f.name_string()); });
  // Every spelling is gone: insert without Beast's look-up by name.
  if (forward && !peer_identity.empty()) {
    request.insert(http::field::unknown, "x-forwarded-client-cert", "URI=" + peer_identity);
  }
}

// Why an upstream exchange produced no usable response.
struct UpstreamFailure {
  LocalResponse response;
  bool retriable = false;  // nothing of the request body was consumed
};

// The client reset or left while its request waited for an upstream.
UpstreamFailure ClientGone() { return UpstreamFailure{Error(503, "the client went away"), false}; }

// How to talk to the routed cluster: its settings over the agent's defaults.
struct UpstreamSettings {
  const routing::ClusterView* cluster = nullptr;  // nullptr: a module chose a bare address
  milliseconds connect_timeout;
  milliseconds request_timeout;  // the route's timeout when it has one
  milliseconds idle_timeout;
  uint32_t attempts = 1;
  milliseconds backoff_base = kDefaultRetryBackoff;
  const google::protobuf::RepeatedField<uint32_t>* retry_on = nullptr;  // statuses retried
  const v1::FaultInjection* fault = nullptr;  // the route's
  bool http2 = false;  // the cluster's endpoints speak HTTP/2
};

// One request from header to the end of its response.
struct Exchange {
  std::shared_ptr<const chains::ChainSet> chains;  // pinned for the whole request, limits included
  const chains::HttpChain* chain = nullptr;
  HttpContext ctx;
  size_t ran = 0;  // chain[0, ran) ran their request steps
  bool response_started = false;  // a response header went downstream
  std::string_view answered_by;   // the chain's plugin that answered the request itself, if one did
  // The client asked to switch protocols (Upgrade, no body): a 101 from the upstream turns
  // the connection into a byte relay. The protocol is the request's Upgrade field, which
  // plugins see and may remove.
  bool upgrade_asked = false;
};

// One request sent on one upstream connection. A request body is streamed upstream by a
// sibling coroutine (the pump) while the response is read and relayed, so an upstream
// that answers before the body ends, or echoes it, is not deadlocked against it.
struct UpstreamCall {
  // HTTP/1.1: the connection and its response parser.
  std::unique_ptr<net::UpstreamConnection> connection;
  bool reused = false;
  std::optional<ResponseParser> response;
  // HTTP/2: the stream and its final response header.
  std::unique_ptr<Http2UpstreamStream> stream;
  http::response_header<> stream_response;
  // Given up (Abandon): a connection made after this carries nothing.
  bool abandoned = false;
  std::optional<BodyFilters> filters;  // the request body steps, used by the pump
  bool reusable = false;  // the response ended cleanly and the upstream keeps the connection

  // The pump (all on the session's worker thread).
  bool pump_running = false;
  bool stopping = false;  // the pump must end
  bool body_sent = false;  // the whole request body went upstream
  bool header_read = false;  // reading the response header has ended
  bool timed_out = false;  // the pump's deadline fired before the response header
  // The protocols the request went upstream with (Upgrade): a 101 to one of them is its
  // final response. Empty: a 101 is a broken response.
  std::string upgrade_offered;
  beast::error_code body_read_error;  // the downstream body was broken
  std::optional<LocalResponse> body_verdict;  // a request body step answered
  std::exception_ptr pump_exception;
  // Made when a pump starts (most requests have no body to pump).
  struct PumpTimers {
    explicit PumpTimers(const asio::any_io_executor& executor)
        : done(executor, Clock::time_point::max()), deadline(executor) {}
    asio::steady_timer done;  // cancelled when the pump ends
    // The request timeout, counted from the end of the request body.
    asio::steady_timer deadline;
  };
  std::optional<PumpTimers> pump;

  // The response header has been read: the request timeout no longer runs.
  void HeaderRead() {
    header_read = true;
    if (pump) pump->deadline.cancel();
  }
};

// The request of `call` failed (its body broke, a body step answered, it timed out): the
// upstream can carry nothing more of it, and the response read must end now or as soon as
// it starts. Closing the HTTP/1.1 connection does both (a cancel would miss a read not
// pending at this moment); an HTTP/2 stream is reset.
void Abandon(UpstreamCall& call) {
  call.abandoned = true;
  if (call.stream) {
    call.stream->Cancel();
  } else if (call.connection) {
    beast::error_code ec;
    call.connection->stream.socket().close(ec);
  }
}

// An HTTP/2 stream's response body as the relay reads it.
struct Http2ResponseBody {
  Http2UpstreamStream& stream;
  milliseconds idle;
  net::Pending Next(std::string& out, beast::error_code& ec) { return stream.ReadBody(out, idle, ec); }
  bool done() const { return stream.done(); }
  const http::fields& trailers() const { return stream.trailers(); }
};

class ExchangeRunner {
 public:
  ExchangeRunner(const ProxyEnv& env, Downstream& downstream) : env_(env), down_(downstream) {}

  // Serves one request with `self`, which lives in the coroutine's frame: one frame for
  // the exchange instead of a caller's holding the runner and the runner's own.
  static awaitable<void> Serve(ExchangeRunner self, ExchangeStart start);

 private:
  // Runs the log steps of a request however its coroutine ends: a return, an exception
  // or destruction.
  struct LogOnExit {
    ExchangeRunner* runner;
    Exchange* x;
    ~LogOnExit() { runner->RunLogSteps(*x); }
  };

  // How to reach the chosen endpoint: plaintext when it has no identity (no agent in
  // front), mTLS when it has one; an error when it has one and this agent has no
  // certificate (plaintext would skip the check of who answers).
  // `endpoint`: the cluster's endpoint Forward chose (nullopt: a bare address).
  absl::StatusOr<std::optional<net::TlsOrigination>> OriginationFor(const UpstreamSettings& settings,
                                                                    std::optional<size_t> endpoint) const;

  // The request steps run in chain order until one answers or forwards. Those that cannot
  // suspend (immediate plugins, and plugins without a request step) run as plain calls: most
  // chains are all built-ins, and a step coroutine costs a frame per request.
  // Both go on from x.ran and leave in `local` the response to send (404 when no step
  // answered or forwarded), nullopt when one forwarded. RunImmediateRequestSteps returns
  // true when the steps are over, false at a step that may suspend (not yet run), which
  // RunRequestStep runs; it returns true when that step ended them.
  bool RunImmediateRequestSteps(Exchange& x, std::optional<LocalResponse>& local);
  awaitable<bool> RunRequestStep(Exchange& x, std::optional<LocalResponse>& local);
  // What a step's verdict leaves: true when the steps of its direction are over, with the
  // answer (if any) in `local`.
  bool Settled(Exchange& x, bool request, const std::string& plugin, Verdict& v,
               std::optional<LocalResponse>& local);
  // The response steps, in reverse over the plugins whose request step ran: nullopt, or a
  // response that replaces the current one.
  awaitable<std::optional<LocalResponse>> RunResponseSteps(Exchange& x);
  void RunLogSteps(Exchange& x) noexcept;
  // A plugin answered the request itself with `status`.
  void Answered(Exchange& x, const std::string& plugin, unsigned status);
  // Offers the finished request's summary to `meshctl tap`.
  void PublishTap(const Exchange& x) const;
  // The plugins with body steps whose request steps ran, in chain order or reversed (for
  // body filters).
  std::vector<plugins::HttpPlugin*> BodyPlugins(const Exchange& x, bool reverse) const;

  awaitable<void> Forward(Exchange& x);
  // A route's fault injection: the answer instead of the upstream's, if any.
  awaitable<std::optional<LocalResponse>> InjectFault(const v1::FaultInjection& fault, UpstreamSettings& settings);
  UpstreamSettings SettingsFor(const Exchange& x) const;
  // Sends the request (its body through the pump) and reads the final response header
  // into call.response; `failure` when there is no response to relay.
  awaitable<void> Call(Exchange& x, const UpstreamSettings& settings, std::optional<size_t> endpoint,
                       UpstreamCall& call, std::optional<UpstreamFailure>& failure);
  // The same over an HTTP/2 stream of the endpoint's multiplexed connection.
  awaitable<void> CallHttp2(Exchange& x, const UpstreamSettings& settings, std::optional<size_t> endpoint,
                            UpstreamCall& call, std::optional<UpstreamFailure>& failure);
  // Starts the pump; false (and `failure`) when the client went away before its body.
  awaitable<bool> StartPump(Exchange& x, Framing framing, bool expect_continue, const UpstreamSettings& settings,
                            UpstreamCall& call, std::optional<UpstreamFailure>& failure);
  awaitable<void> PumpBody(Exchange& x, Framing framing, const UpstreamSettings& settings, UpstreamCall& call);
  // Why reading the response header failed when the pump or the deadline says (nullopt
  // otherwise: the upstream's fault).
  std::optional<UpstreamFailure> PumpFailure(Exchange& x, UpstreamCall& call, const beast::error_code& ec);
  // Ends a running pump and waits until it has.
  awaitable<void> StopPump(UpstreamCall& call);
  // `cluster`: the one the request went to (SettingsFor's), for its connection limit.
  awaitable<void> RelayResponse(Exchange& x, UpstreamCall& call, const routing::ClusterView* cluster);
  awaitable<void> RelayHttp2Response(Exchange& x, UpstreamCall& call);
  // Sends x.ctx.response down and relays the body from `source` (Next, done; trailers for
  // HTTP/2) through the response body steps; false when the relay broke or the response
  // was replaced by a 502 (the upstream body failed before anything went down).
  // `declared_length`: the upstream's Content-Length; `hold`: see Downstream::SendHeader.
  template <typename Source>
  awaitable<bool> SendResponse(Exchange& x, const UpstreamCall& call, Source& source, bool has_body,
                               std::optional<uint64_t> declared_length, bool hold);
  // x.ctx.response, set to the upstream's header by the caller, on its way down: its
  // Connection options are removed, and it passes as it is when the chain has no response
  // step (most have none; no built-in module has one) and its status can be sent. Else
  // PassResponseSteps runs the steps on it: false when they answered instead or set a
  // status the response cannot have (that answer has gone downstream).
  bool ResponsePassesAsIs(Exchange& x);
  awaitable<bool> PassResponseSteps(Exchange& x);
  // A 101 to an Upgrade: the header goes downstream, then both connections are relayed
  // byte for byte until they end (the tcp timeouts apply); neither is reused.
  awaitable<void> RelayUpgraded(Exchange& x, UpstreamCall& call);
  // A response the agent makes itself; with `run_steps`, the response steps may still
  // replace it once.
  awaitable<void> Respond(Exchange& x, LocalResponse response, bool run_steps);
  // Writes x.ctx.response with `body` downstream, no plugin involved.
  awaitable<void> SendLocal(Exchange& x, std::string body);

  void Count(std::string_view name, std::string_view cluster) {
    env_.stats->Count(name, {{"cluster", cluster}});
  }
  // A gRPC response that went down, by its status ("" when it had none: a broken server),
  // with the golden metrics' labels.
  void CountGrpc(const Exchange& x, std::string_view status) {
    // Only the 17 codes gRPC defines are labels of their own: a server cannot grow the series.
    unsigned code = 0;
    std::string label = "other";
    if (ParseNumber(status, code) && code <= 16) label = std::to_string(code);
    thread_local Stats::Labels labels;
    plugins::SetTrafficLabels(labels, env_.inbound, x.ctx);
    labels.emplace_back("route", x.ctx.route);
    labels.emplace_back("grpc_status", label);
    env_.stats->Count("meshplug_grpc_responses_total", labels);
  }

  const ProxyEnv& env_;
  Downstream& down_;
};

absl::StatusOr<std::optional<net::TlsOrigination>> ExchangeRunner::OriginationFor(
    const UpstreamSettings& settings, std::optional<size_t> i) const {
  const routing::ClusterView* cluster = settings.cluster;
  if (!cluster || !i || cluster->lb->endpoint(*i).identity().empty()) return std::nullopt;
  return net::OriginationTo(env_.tls, cluster->lb->endpoint(*i).identity());
}

awaitable<void> ExchangeRunner::Serve(ExchangeRunner self, ExchangeStart start) {
  Exchange x;
  x.chains = std::move(start.chains);
  const chains::ChainSet& chains = *x.chains;
  x.chain = &chains.http(self.env_.inbound);
  x.ctx.request = std::move(start.request);
  x.ctx.workload = &chains.workload();
  x.ctx.peer_identity = std::move(start.peer_identity);
  x.ctx.configs = &chains.mesh().configs(self.env_.inbound);
  x.ctx.resolver = &chains.mesh();
  x.ctx.pool = self.env_.pool;
  x.ctx.tls = self.env_.tls;
  x.upgrade_asked = start.upgrade_asked;
  if (self.env_.inbound) {
    SetForwardedClientCert(x.ctx.request, x.ctx.peer_identity, chains.snapshot().settings().forward_client_cert());
  }

  LogOnExit log{&self, &x};
  // Every exception of the request ends here: a 500 (without its text) if no response
  // went out yet, a counter, and the connection closes.
  bool failed = false;
  std::string failed_plugin;
  try {
    std::optional<LocalResponse> local;
    bool settled = self.RunImmediateRequestSteps(x, local);
    while (!settled) {
      settled = co_await self.RunRequestStep(x, local);
      if (!settled) settled = self.RunImmediateRequestSteps(x, local);
    }
    if (local) {
      co_await self.Respond(x, std::move(*local), true);
    } else {
      co_await self.Forward(x);
    }
  } catch (const PluginError& e) {
    failed = true;
    failed_plugin = e.plugin();
  } catch (...) {
    failed = true;
  }
  if (failed) {
    if (!failed_plugin.empty()) {
      self.env_.stats->Count("meshplug_plugin_errors_total", {{"plugin", failed_plugin}});
    } else {
      self.env_.stats->Count("meshplug_http_internal_errors_total",
                             {{"direction", self.env_.inbound ? "inbound" : "outbound"}});
    }
    self.down_.EndAfterResponse();
    if (!x.response_started) {
      http::response_header<> header;
      header.result(http::status::internal_server_error);
      header.version(11);
      x.ctx.response = std::move(header);
      try {
        co_await self.SendLocal(x, "internal error\n");
      } catch (...) {
      }
    }
  }
}

std::vector<plugins::HttpPlugin*> ExchangeRunner::BodyPlugins(const Exchange& x, bool reverse) const {
  std::vector<plugins::HttpPlugin*> out;
  for (size_t i = 0; i < x.ran; ++i) {
    if ((*x.chain)[i].body_steps) out.push_back((*x.chain)[i].plugin.get());
  }
  if (reverse) std::reverse(out.begin(), out.end());
  return out;
}

// Whether a plugin whose request step ran has a response step.
bool HasResponseSteps(const Exchange& x) {
  return std::any_of(x.chain->begin(), x.chain->begin() + x.ran,
                     [](const auto& entry) { return entry.response_time != nullptr; });
}

// Times consecutive plugin steps with one clock read per step.
class StepTimer {
 public:
  void Lap(Stats::FixedHistogram& into) {
    const Clock::time_point now = Clock::now();
    into.Observe(std::chrono::duration<double>(now - last_).count());
    last_ = now;
  }

 private:
  Clock::time_point last_ = Clock::now();
};

void ExchangeRunner::Answered(Exchange& x, const std::string& plugin, unsigned status) {
  x.answered_by = plugin;
  env_.stats->Count("meshplug_plugin_responses_total",
                    {{"chain", env_.inbound ? "inbound-http" : "outbound-http"},
                     {"plugin", plugin},
                     {"code", std::to_string(SendableStatus(status))}});
}

bool ExchangeRunner::Settled(Exchange& x, bool request, const std::string& plugin, Verdict& v,
                             std::optional<LocalResponse>& local) {
  if (v.kind == Verdict::Kind::kRespond) {
    Answered(x, plugin, v.response.status);
    local = std::move(v.response);
    return true;
  }
  return request && v.kind == Verdict::Kind::kForward;
}

bool ExchangeRunner::RunImmediateRequestSteps(Exchange& x, std::optional<LocalResponse>& local) {
  StepTimer timer;
  while (x.ran < x.chain->size()) {
    const auto& entry = (*x.chain)[x.ran];
    const bool has_step = entry.request_time != nullptr;
    if (has_step && entry.immediate == nullptr) return false;
    ++x.ran;
    if (!has_step) continue;  // nothing to call or time
    // Built in place: moving a Verdict moves its response's fields.
    Verdict v = ImmediateStep(entry.name, [&] { return entry.immediate->RequestHeaders(x.ctx); });
    timer.Lap(*entry.request_time);
    if (Settled(x, true, entry.name, v, local)) return true;
  }
  local = Error(404, "no module of the chain answered");
  return true;
}

awaitable<bool> ExchangeRunner::RunRequestStep(Exchange& x, std::optional<LocalResponse>& local) {
  StepTimer timer;
  const auto& entry = (*x.chain)[x.ran++];
  Verdict v = co_await PluginStep(entry.name, [&] { return entry.plugin->OnRequestHeaders(x.ctx); });
  timer.Lap(*entry.request_time);
  co_return Settled(x, true, entry.name, v, local);
}

awaitable<std::optional<LocalResponse>> ExchangeRunner::RunResponseSteps(Exchange& x) {
  StepTimer timer;
  std::optional<LocalResponse> local;
  for (size_t k = x.ran; k-- > 0;) {
    const auto& entry = (*x.chain)[k];
    if (entry.response_time == nullptr) continue;  // the plugin has no response step: nothing to call or time
    Verdict v = co_await PluginStep(entry.name, [&] { return entry.plugin->OnResponseHeaders(x.ctx); });
    timer.Lap(*entry.response_time);
    if (Settled(x, false, entry.name, v, local)) break;
  }
  co_return local;
}

void ExchangeRunner::PublishTap(const Exchange& x) const {
  const HttpContext& ctx = x.ctx;
  TapRecord r;
  r.inbound = env_.inbound;
  r.method = ctx.request.method_string();
  r.authority = plugins::FieldValue(ctx.request, http::field::host);
  r.path = ctx.request.target().substr(0, ctx.request.target().find('?'));
  r.status = ctx.response ? ctx.response->result_int() : 0;
  r.seconds = std::chrono::duration<double>(Clock::now() - ctx.started).count();
  r.parties = plugins::PartiesOf(env_.inbound, ctx);
  r.route = ctx.route;
  std::string upstream;
  if (env_.inbound) {
    r.peer = ctx.peer_identity;
  } else if (ctx.upstream) {
    upstream = Cat(ctx.upstream->host, ":", ctx.upstream->port);
    r.peer = upstream;
  }
  for (size_t i = 0; i < x.ran; ++i) r.plugins.push_back((*x.chain)[i].name);
  r.answered_by = x.answered_by;
  env_.tap->Publish(r);
}

void ExchangeRunner::RunLogSteps(Exchange& x) noexcept {
  if (env_.tap != nullptr && env_.tap->active()) {
    try {
      PublishTap(x);
    } catch (...) {
    }
  }
  for (size_t i = 0; i < x.ran; ++i) {
    const auto& entry = (*x.chain)[i];
    try {
      entry.plugin->OnLog(x.ctx);
    } catch (...) {
      try {
        env_.stats->Count("meshplug_plugin_errors_total", {{"plugin", entry.name}});
      } catch (...) {
      }
    }
  }
}

awaitable<void> ExchangeRunner::Respond(Exchange& x, LocalResponse response, bool run_steps) {
  auto set_response = [&](const LocalResponse& r) {
    http::response_header<> header(r.headers);
    header.result(SendableStatus(r.status));
    header.version(11);
    x.ctx.response = std::move(header);
  };
  set_response(response);
  if (run_steps && HasResponseSteps(x)) {
    std::optional<LocalResponse> replaced = co_await RunResponseSteps(x);
    if (replaced) {
      response = std::move(*replaced);
      set_response(response);
    }
  }
  std::string body = std::move(response.body);
  BodyFilters filters(BodyPlugins(x, true), false, x.chains->limits().max_buffered_body_bytes);
  if (!filters.empty()) {
    Verdict v = co_await filters.Run(x.ctx, body, true);
    if (v.kind == Verdict::Kind::kRespond) body = std::move(v.response.body);
  }
  co_await SendLocal(x, std::move(body));
}

awaitable<void> ExchangeRunner::SendLocal(Exchange& x, std::string body) {
  http::response_header<> header = *x.ctx.response;
  // A response step may have set any status on ctx.response.
  header.result(SendableStatus(header.result_int()));
  RemoveHopByHop(header);
  const bool grpc = IsGrpc(x.ctx.request);
  // A gRPC client reads an error from grpc-status, not from the HTTP status.
  if (grpc) ToGrpcError(header, body);
  if (WithoutContent(header.result_int())) {
    body.clear();
    header.erase(http::field::content_length);
    header.erase(http::field::transfer_encoding);
  } else {
    SetFraming(header, Framing::kLength, body.size());
    if (!header.count(http::field::content_type) && !body.empty()) {
      header.set(http::field::content_type, "text/plain");
    }
  }
  const std::string grpc_status = grpc ? std::string(plugins::UnknownFieldValue(header, "grpc-status")) : std::string();
  // A response to HEAD has no body, whatever its length says.
  if (x.ctx.request.method() == http::verb::head) body.clear();
  beast::error_code ec;
  x.response_started = true;
  co_await down_.SendWhole(std::move(header), body, ec);
  if (ec) down_.EndAfterResponse();
  if (!ec) x.ctx.response_body_bytes += body.size();
  // Only what the client got counts.
  if (grpc && !ec) CountGrpc(x, grpc_status);
}

namespace {

void SetRetry(const v1::RetryPolicy& retry, UpstreamSettings& out) {
  out.attempts = 1 + retry.num_retries();  // at most 1 + kMaxRetries (MeshView checks)
  out.backoff_base = routing::DurationOr(retry.backoff_base(), retry.has_backoff_base(), kDefaultRetryBackoff);
  out.retry_on = &retry.retry_on_status();
}

}  // namespace

UpstreamSettings ExchangeRunner::SettingsFor(const Exchange& x) const {
  const Limits& limits = x.chains->limits();
  UpstreamSettings out{nullptr, limits.connect_timeout, limits.request_timeout,
                       limits.upstream_idle_timeout};
  const routing::ClusterView* cluster = x.chains->mesh().FindCluster(x.ctx.upstream->cluster);
  if (cluster != nullptr) {
    const v1::Cluster& c = cluster->config;
    out.cluster = cluster;
    out.connect_timeout =
        routing::DurationOr(c.connect_timeout(), c.has_connect_timeout(), out.connect_timeout);
    out.request_timeout =
        routing::DurationOr(c.request_timeout(), c.has_request_timeout(), out.request_timeout);
    out.idle_timeout = routing::DurationOr(c.idle_timeout(), c.has_idle_timeout(), out.idle_timeout);
    SetRetry(c.retry(), out);
    out.http2 = c.protocol() == v1::PROTOCOL_HTTP2 || c.protocol() == v1::PROTOCOL_GRPC;
  }
  if (const v1::HttpRoute* route = x.chains->mesh().FindRoute(x.ctx.service, x.ctx.route, env_.inbound)) {
    out.request_timeout = routing::DurationOr(route->timeout(), route->has_timeout(), out.request_timeout);
    if (route->has_retry()) SetRetry(route->retry(), out);
    if (route->has_fault()) out.fault = &route->fault();
  }
  // A gRPC deadline shorter than the route's timeout bounds the wait for the response.
  if (std::optional<milliseconds> deadline = GrpcTimeout(plugins::UnknownFieldValue(x.ctx.request, "grpc-timeout"))) {
    out.request_timeout = std::min(out.request_timeout, *deadline);
  }
  return out;
}

// Starts reading a response header of `call` into a new parser. Interim responses (100
// Continue, 103 Early Hints) are not forwarded: the caller reads again while
// net::InterimResponse.
net::Pending StartResponseHeader(const Exchange& x, UpstreamCall& call, beast::error_code& ec) {
  net::UpstreamConnection& upstream = *call.connection;
  call.response.emplace();
  call.response->header_limit(x.chains->limits().max_header_bytes);
  call.response->body_limit(kUnlimitedBody);
  // A response to HEAD has no body whatever its Content-Length says.
  call.response->skip(x.ctx.request.method() == http::verb::head);
  return net::StartReadHttp(upstream.stream, upstream.buffer, *call.response, net::ParseUntil::kHeaderDone,
                            std::nullopt, ec);
}

awaitable<std::optional<LocalResponse>> ExchangeRunner::InjectFault(const v1::FaultInjection& fault,
                                                                   UpstreamSettings& settings) {
  if (fault.delay_percent() > RandomU64() % 100) {
    const milliseconds delay = routing::DurationOr(fault.delay(), true, milliseconds(0));
    asio::steady_timer timer(down_.executor(), delay);
    bool gone = false;  // a stream the client reset waits no longer (nor holds its slot)
    down_.OnClientReset([&] {
      gone = true;
      timer.cancel();
    });
    beast::error_code ec;
    co_await timer.async_wait(Ec(ec));
    down_.OnClientReset(nullptr);
    if (gone) co_return ClientGone().response;
    // The delay counts against the request's time, as it does for a client's deadline.
    if (settings.request_timeout <= delay) co_return Error(504, "upstream request timeout");
    settings.request_timeout -= delay;
  }
  if (fault.abort_status() != 0 && fault.abort_percent() > RandomU64() % 100) {
    co_return Error(fault.abort_status(), "fault injected");
  }
  co_return std::nullopt;
}

awaitable<void> ExchangeRunner::Forward(Exchange& x) {
  if (!x.ctx.upstream || x.ctx.upstream->port == 0) {
    co_return co_await Respond(x, Error(503, "no upstream endpoint chosen"), true);
  }
  UpstreamSettings settings = SettingsFor(x);
  if (settings.fault) {
    std::optional<LocalResponse> injected = co_await InjectFault(*settings.fault, settings);
    if (injected) co_return co_await Respond(x, *std::move(injected), true);
  }
  const routing::ClusterView* cluster = settings.cluster;
  // Statuses are retried only when there is no body to replay.
  bool replayable = down_.body_done();
  std::optional<UpstreamFailure> failure;
  for (uint32_t attempt = 0; attempt < settings.attempts; ++attempt) {
    if (attempt > 0) {
      Count("meshplug_upstream_retries_total", x.ctx.upstream->cluster);
      // min(base, 1s) × min(10, 2^(n-1)), as osm-edge does.
      auto delay = std::min(settings.backoff_base, milliseconds(1000)) *
                   std::min(10u, 1u << std::min(attempt - 1, 4u));
      asio::steady_timer timer(down_.executor(), delay);
      beast::error_code ec;
      co_await timer.async_wait(Ec(ec));
    }
    std::optional<size_t> endpoint;
    if (cluster) {
      endpoint = cluster->lb->IndexOf(x.ctx.upstream->host, x.ctx.upstream->port);
      if (attempt > 0) {
        endpoint = cluster->lb->Pick(endpoint);
        if (!endpoint) break;
        routing::SetEndpoint(*x.ctx.upstream, cluster->lb->endpoint(*endpoint));
      }
    }
    ActiveRequest active(cluster ? cluster->lb.get() : nullptr, endpoint);
    failure.reset();
    UpstreamCall call;
    bool relayed = false;
    bool retry_status = false;
    // The pump refers to `call`: it must have ended before `call` goes, exception or not.
    std::exception_ptr error;
    down_.OnClientReset([&call] { Abandon(call); });
    // Another agent (an endpoint with an identity) is always called over HTTP/2: every
    // request to it shares one multiplexed mTLS connection per worker, whatever the app
    // behind it speaks. Not a request that asks to switch protocols: that needs HTTP/1.1.
    const bool to_agent = cluster && endpoint && !cluster->lb->endpoint(*endpoint).identity().empty();
    const bool http2 = settings.http2 || (to_agent && !x.upgrade_asked);
    try {
      if (http2) {
        co_await CallHttp2(x, settings, endpoint, call, failure);
      } else {
        co_await Call(x, settings, endpoint, call, failure);
      }
      if (!failure) {
        const unsigned status = call.stream ? call.stream_response.result_int() : call.response->get().result_int();
        retry_status = replayable && attempt + 1 < settings.attempts && settings.retry_on &&
                       std::find(settings.retry_on->begin(), settings.retry_on->end(), status) != settings.retry_on->end();
        if (!retry_status) {
          if (call.stream) {
            co_await RelayHttp2Response(x, call);
          } else {
            co_await RelayResponse(x, call, cluster);
          }
          relayed = true;
        }
      }
    } catch (...) {
      error = std::current_exception();
    }
    down_.OnClientReset(nullptr);
    if (call.pump_running) co_await StopPump(call);  // most requests have no body to pump
    if (error) std::rethrow_exception(error);
    if (relayed) {
      // Only a connection whose request and response both ended, with nothing read
      // beyond the response, can carry the next request.
      if (call.reusable && call.body_sent && call.connection && call.connection->buffer.size() == 0) {
        env_.pool->Release(std::move(call.connection));
      }
      co_return;
    }
    if (retry_status || failure->retriable) continue;
    break;
  }
  if (!failure) failure = UpstreamFailure{Error(503, "no healthy upstream"), false};
  co_await Respond(x, std::move(failure->response), true);
}

awaitable<void> ExchangeRunner::Call(Exchange& x, const UpstreamSettings& settings, std::optional<size_t> endpoint,
                                    UpstreamCall& call, std::optional<UpstreamFailure>& failure) {
  const Limits& limits = x.chains->limits();
  bool has_body = !down_.body_done();
  std::optional<uint64_t> length = down_.body_length();
  call.filters.emplace(BodyPlugins(x, false), true, limits.max_buffered_body_bytes);

  const bool expect_continue = has_body && beast::iequals(x.ctx.request[http::field::expect], "100-continue");
  Framing framing = Framing::kNone;
  const http::verb method = x.ctx.request.method();
  if (has_body) {
    framing = length && call.filters->empty() ? Framing::kLength : Framing::kChunked;
  } else if (length || x.ctx.request.count(http::field::content_length) > 0 || method == http::verb::post ||
             method == http::verb::put || method == http::verb::patch) {
    // No body: its length is 0, said when the request said one (some servers require
    // "Content-Length: 0"; a request step may have set another) or its method gives content
    // a meaning (RFC 9110 §8.6). An HTTP/2 request may end with its header instead, and
    // HTTP/1.1 servers answer 411 to a PUT without it.
    framing = Framing::kLength;
    length = 0;
  }
  OutgoingFields outgoing{framing, length, true, {}, expect_continue};
  // Checked again: a request step may have changed the protocols.
  if (const std::string_view upgrade = x.upgrade_asked ? plugins::FieldValue(x.ctx.request, http::field::upgrade) : "";
      UpgradeAllowed(upgrade)) {
    outgoing.upgrade = upgrade;
    call.upgrade_offered = upgrade;
  }
  const std::string head = OutgoingHeaderBytes(x.ctx.request, outgoing);

  // A kept-alive connection the upstream closed just before or as the request went out
  // is replaced once by a new connection: when writing the header failed (nothing was
  // consumed), or when the response ended before its first byte and the request can be
  // sent again (no body, idempotent method).
  bool resendable = !has_body && net::Idempotent(x.ctx.request.method());
  const absl::StatusOr<std::optional<net::TlsOrigination>> origination = OriginationFor(settings, endpoint);
  if (!origination.ok()) {
    Count("meshplug_upstream_connect_failures_total", x.ctx.upstream->cluster);
    failure = UpstreamFailure{Error(503, Cat("upstream connect failed: ", origination.status().message())), false};
    co_return;
  }
  const std::optional<net::TlsOrigination>& tls = *origination;
  // The kept-alive connection had been closed (or was being closed) by the upstream: the
  // request goes again on a new one, and the endpoint's other closed ones are dropped.
  auto stale = [&] {
    Count("meshplug_upstream_stale_connection_retries_total", x.ctx.upstream->cluster);
    env_.pool->DropClosed(call.connection->key);
  };
  // The request's write failed: nothing of it reached the upstream, unless the write timed
  // out after the socket took it all. Whether it goes again (only a request that may be
  // repeated, then); else the failure is set.
  auto write_failed = [&](const beast::error_code& ec) {
    if (call.reused && (resendable || ec != beast::error::timeout)) {
      stale();
      return true;
    }
    failure = UpstreamFailure{Error(503, Cat("upstream write failed: ", ec.message())), true};
    return false;
  };
  for (int fresh_attempt = 0; fresh_attempt < 2; ++fresh_attempt) {
    beast::error_code ec;
    call.connection.reset();
    call.response.reset();
    if (call.abandoned) {
      failure = ClientGone();
      co_return;
    }
    net::Acquired acquired = env_.pool->Acquire(
        x.ctx.upstream->host, x.ctx.upstream->port, settings.connect_timeout, settings.idle_timeout,
        fresh_attempt > 0 ? net::Reuse::kNone : resendable ? net::Reuse::kAsIs : net::Reuse::kChecked, ec,
        tls ? &*tls : nullptr);
    call.reused = acquired.idle != nullptr;
    call.connection = std::move(acquired.idle);
    if (acquired.connect) call.connection = co_await std::move(*acquired.connect);
    if (!call.connection) {
      Count("meshplug_upstream_connect_failures_total", x.ctx.upstream->cluster);
      failure = UpstreamFailure{Error(503, Cat("upstream connect failed: ", ec.message())),
                                true};
      co_return;
    }
    if (call.abandoned) {
      failure = ClientGone();
      co_return;
    }
    call.connection->buffer.max_size(ReadBufferLimit(limits.max_header_bytes));
    ++call.connection->requests;
    // With a body the header goes now, not at the turn's end: whether it failed is known
    // before the body is read (a request whose body was read cannot go again).
    if (net::Pending rest = net::StartWrite(call.connection->stream, asio::buffer(head),
                                            limits.downstream_idle_timeout, ec, /*may_hold=*/!has_body)) {
      co_await std::move(*rest);
    }
    if (ec) {
      if (write_failed(ec)) continue;
      co_return;
    }
    if (has_body) {
      const bool ok = co_await StartPump(x, framing, expect_continue, settings, call, failure);
      if (!ok) co_return;
    } else {
      call.body_sent = true;
    }
    // Without a body the request timeout bounds the response header here; with one, the
    // pump enforces it.
    if (has_body) {
      call.connection->stream.expires_never();
    } else {
      call.connection->stream.expires_after(settings.request_timeout);
    }
    do {
      if (net::Pending rest = StartResponseHeader(x, call, ec)) co_await std::move(*rest);
    } while (!ec && net::InterimResponse(*call.response));
    call.HeaderRead();
    // A request header held for the turn's end (net::StartWrite) fails after the read began
    // (without a body: one with a body is written at once, never held).
    if (const beast::error_code& held = call.connection->stream.held_write_error(); ec && !has_body && held) {
      if (write_failed(held)) continue;
      co_return;
    }
    if (!ec) {
      const http::response_header<>& response = call.response->get().base();
      // A server may send 408 on a kept-alive connection it is closing, before or as a
      // request arrives (RFC 9110 §15.5.9): a request that can be sent again goes again.
      if (call.reused && resendable && response.result_int() == 408) {
        stale();
        continue;
      }
      if (FieldCount(response) > limits.max_header_count) {
        failure = UpstreamFailure{Error(502, "upstream response has too many header fields"),
                                  false};
      } else if (!ForwardableResponseFraming(response)) {
        failure = UpstreamFailure{Error(502, "upstream response uses a transfer coding other "
                                             "than chunked"),
                                  false};
      } else if (response.result_int() == 101 &&
                 !UpgradeOffered(call.upgrade_offered, response[http::field::upgrade])) {
        // Its next bytes are another protocol: never parsed as HTTP, never pooled.
        failure = UpstreamFailure{Error(502, "upstream switched to a protocol the request did not ask for"), false};
      }
      co_return;
    }
    failure = PumpFailure(x, call, ec);
    if (failure) co_return;
    if (call.reused && resendable && !call.response->got_some()) {
      stale();
      continue;
    }
    failure = UpstreamFailure{Error(502, Cat("bad upstream response: ", ec.message())),
                              false};
    co_return;
  }
  failure = UpstreamFailure{Error(503, "upstream closed kept-alive connections"), true};
}

// Streams the request body upstream, then (unless the response header came already)
// waits out the request timeout and ends the response read if it fires.
awaitable<void> ExchangeRunner::PumpBody(Exchange& x, Framing framing,
                                      const UpstreamSettings& settings, UpstreamCall& call) {
  std::optional<BodySink> sink;
  if (call.connection) sink.emplace(call.connection->stream, framing, settings.idle_timeout);
  std::string piece;
  beast::error_code ec;
  while (!call.stopping) {
    if (net::Pending rest = down_.ReadBody(piece, ec)) co_await std::move(*rest);
    if (call.stopping) co_return;
    if (ec) {
      // The request is broken: the upstream response is of no use.
      call.body_read_error = ec;
      Abandon(call);
      co_return;
    }
    bool last = down_.body_done();
    if (!call.filters->empty()) {
      Verdict v = co_await call.filters->Run(x.ctx, piece, last);
      if (v.kind == Verdict::Kind::kRespond) {
        call.body_verdict = std::move(v.response);
        Abandon(call);
        co_return;
      }
    }
    if (call.stream) {
      co_await call.stream->Write(piece, last, settings.idle_timeout, ec);
    } else if (net::Pending rest = sink->Write(piece, last, ec)) {
      co_await std::move(*rest);
    }
    if (!ec) x.ctx.request_body_bytes += piece.size();
    if (!ec && last) call.body_sent = true;
    // A failed write leaves the response read running: the upstream may have answered
    // (413, 401…) before it stopped reading.
    if (ec || last || call.stopping) break;
  }
  if (call.header_read || call.stopping) co_return;
  call.pump->deadline.expires_after(settings.request_timeout);
  co_await call.pump->deadline.async_wait(Ec(ec));
  if (!ec && !call.header_read && !call.stopping) {
    call.timed_out = true;
    Abandon(call);
  }
}

awaitable<bool> ExchangeRunner::StartPump(Exchange& x, Framing framing, bool expect_continue,
                                          const UpstreamSettings& settings, UpstreamCall& call,
                                          std::optional<UpstreamFailure>& failure) {
  if (expect_continue) {
    beast::error_code ec;
    co_await down_.SendContinue(ec);
    if (ec) {
      down_.EndAfterResponse();
      failure = UpstreamFailure{Error(400, "client went away"), false};
      co_return false;
    }
  }
  call.pump.emplace(down_.executor());
  asio::co_spawn(down_.executor(), PumpBody(x, framing, settings, call), [&call](std::exception_ptr e) {
    call.pump_running = false;
    if (e) {
      call.pump_exception = e;
      // The response read must not wait for a request that failed.
      Abandon(call);
    }
    call.pump->done.cancel();
  });
  // Only once spawned (its start is posted, so it cannot have ended yet): had co_spawn
  // thrown, StopPump would wait for a pump that never ran.
  call.pump_running = true;
  co_return true;
}

std::optional<UpstreamFailure> ExchangeRunner::PumpFailure(Exchange& x, UpstreamCall& call, const beast::error_code& ec) {
  if (call.pump_exception) std::rethrow_exception(call.pump_exception);
  if (call.timed_out || ec == beast::error::timeout) {
    Count("meshplug_upstream_timeouts_total", x.ctx.upstream->cluster);
    return UpstreamFailure{Error(504, "upstream request timeout"), false};
  }
  if (call.body_verdict) return UpstreamFailure{std::move(*call.body_verdict), false};
  if (call.body_read_error) {
    down_.EndAfterResponse();
    return UpstreamFailure{Error(400, Cat("bad request body: ", call.body_read_error.message())), false};
  }
  return std::nullopt;
}

awaitable<void> ExchangeRunner::CallHttp2(Exchange& x, const UpstreamSettings& settings, std::optional<size_t> endpoint,
                                          UpstreamCall& call, std::optional<UpstreamFailure>& failure) {
  const Limits& limits = x.chains->limits();
  const bool has_body = !down_.body_done();
  call.filters.emplace(BodyPlugins(x, false), true, limits.max_buffered_body_bytes);
  http::request_header<> header = x.ctx.request;
  const bool expect_continue = has_body && beast::iequals(header[http::field::expect], "100-continue");
  if (expect_continue) header.erase(http::field::expect);
  RemoveHopByHop(header);
  // HTTP/2 frames the body itself; a body step may change its length.
  if (!call.filters->empty()) header.erase(http::field::content_length);
  const absl::StatusOr<std::optional<net::TlsOrigination>> origination = OriginationFor(settings, endpoint);
  // A stream the upstream refused (REFUSED_STREAM, also the streams a GOAWAY cut off) was
  // not processed: one more is opened at once, on a new connection if that one is going
  // away — unless body bytes went with it, which cannot be sent again.
  for (int fresh_attempt = 0; fresh_attempt < 2; ++fresh_attempt) {
    beast::error_code ec;
    call.stream.reset();
    failure.reset();
    if (call.abandoned) {
      // The client reset its stream already: nothing goes upstream.
      failure = ClientGone();
      co_return;
    }
    if (origination.ok()) {
      const net::TlsOrigination* tls = *origination ? &**origination : nullptr;
      call.stream = co_await env_.h2_pool->Open(x.ctx.upstream->host, x.ctx.upstream->port, settings.connect_timeout,
                                                settings.idle_timeout, limits.max_header_bytes, tls, header, has_body,
                                                call.abandoned, ec);
    }
    if (call.abandoned) {
      // The client reset its stream while the connection was being made: nothing went.
      failure = ClientGone();
      co_return;
    }
    if (!call.stream) {
      Count("meshplug_upstream_connect_failures_total", x.ctx.upstream->cluster);
      std::string why(origination.status().message());
      if (origination.ok()) why = ec.message();
      failure = UpstreamFailure{Error(503, Cat("upstream connect failed: ", why)), origination.ok()};
      co_return;
    }
    if (has_body) {
      const bool ok = co_await StartPump(x, Framing::kNone, expect_continue, settings, call, failure);
      if (!ok) co_return;
    } else {
      call.body_sent = true;
    }
    // With a body, the pump's deadline (from the body's end) bounds the wait.
    Clock::time_point deadline = Clock::time_point::max();
    if (!has_body) deadline = Clock::now() + settings.request_timeout;
    co_await call.stream->ReadHeader(call.stream_response, deadline, ec);
    call.HeaderRead();
    if (!ec) {
      if (FieldCount(call.stream_response) > limits.max_header_count) {
        failure = UpstreamFailure{Error(502, "upstream response has too many header fields"), false};
      }
      co_return;
    }
    failure = PumpFailure(x, call, ec);
    if (failure) co_return;
    if (ec == asio::error::try_again) {
      // Body bytes went with it: it cannot be sent again.
      failure = UpstreamFailure{Error(503, "upstream refused the stream"), !has_body};
      if (has_body) co_return;
      Count("meshplug_upstream_refused_stream_retries_total", x.ctx.upstream->cluster);
      call.header_read = false;
      continue;
    }
    failure = UpstreamFailure{Error(502, Cat("bad upstream response: ", ec.message())), false};
    co_return;
  }
}

awaitable<void> ExchangeRunner::StopPump(UpstreamCall& call) {
  call.stopping = true;
  call.pump->deadline.cancel();
  // Ends the pump's pending read (downstream) or write (upstream).
  down_.CancelRead();
  if (call.connection) call.connection->stream.cancel();
  if (call.stream) call.stream->Cancel();
  beast::error_code ec;
  if (call.pump_running) co_await call.pump->done.async_wait(Ec(ec));
}

// Whether a response whose upstream sent `upstream_status` can go down with `status`, which
// a response step may have set: final (not 1xx, found by fuzz/lua_script) and, unless the
// upstream's was, not one without content (204/304), whose framing would contradict the
// body that follows; a 101 stays a 101 (the connection switches either way).
bool Sendable(unsigned upstream_status, unsigned status) {
  return upstream_status == 101 ? status == 101
                                : status == SendableStatus(status) &&
                                      (!WithoutContent(status) || status == upstream_status);
}

bool ExchangeRunner::ResponsePassesAsIs(Exchange& x) {
  RemoveConnectionOptions(*x.ctx.response);
  const unsigned status = x.ctx.response->result_int();
  return !HasResponseSteps(x) && Sendable(status, status);
}

awaitable<bool> ExchangeRunner::PassResponseSteps(Exchange& x) {
  const unsigned upstream_status = x.ctx.response->result_int();
  // Only when ResponsePassesAsIs did not: a response step, or a status to refuse.
  std::optional<LocalResponse> replaced = co_await RunResponseSteps(x);
  if (replaced) {
    co_await Respond(x, std::move(*replaced), false);
    co_return false;
  }
  if (!Sendable(upstream_status, x.ctx.response->result_int())) {
    co_await Respond(x, Error(500, "a plugin set a status this response cannot have"), false);
    co_return false;
  }
  co_return true;
}

awaitable<void> ExchangeRunner::RelayUpgraded(Exchange& x, UpstreamCall& call) {
  net::UpstreamConnection& upstream = *call.connection;
  const std::string protocol(call.response->get()[http::field::upgrade]);
  down_.EndAfterResponse();  // whatever happens, this connection carries no other request
  x.ctx.response = call.response->get().base();
  if (!ResponsePassesAsIs(x)) {
    const bool passed = co_await PassResponseSteps(x);
    if (!passed) co_return;
  }
  http::response_header<> header = *x.ctx.response;
  RemoveHopByHop(header);
  header.set(http::field::connection, "Upgrade");
  header.set(http::field::upgrade, protocol);
  const Limits& limits = x.chains->limits();
  beast::error_code ec;
  x.response_started = true;
  co_await down_.SendSwitch(std::move(header), ec);
  if (ec) co_return;
  Count("meshplug_http_upgrades_total", x.ctx.upstream->cluster);
  const RelayEnd end =
      co_await down_.RelaySwitched(upstream, RelayTimeouts{limits.tcp_idle_timeout, limits.tcp_half_close_timeout});
  if (end == RelayEnd::kTimedOut) Count("meshplug_tcp_idle_timeouts_total", x.ctx.upstream->cluster);
}

awaitable<void> ExchangeRunner::RelayResponse(Exchange& x, UpstreamCall& call, const routing::ClusterView* cluster) {
  ResponseParser& response = *call.response;
  // Call let a 101 through only to the protocol the request asked for.
  if (response.get().result_int() == 101) co_return co_await RelayUpgraded(x, call);
  net::UpstreamConnection& upstream = *call.connection;
  // What the upstream's header said, before response steps could change it.
  const bool upstream_keep_alive = KeepAlive(response.get().base());
  const std::optional<uint64_t> declared_length = ContentLength(response.get().base());
  // The parser reads only the body from here on: its header moves to the response steps.
  x.ctx.response = std::move(response.get().base());
  if (!ResponsePassesAsIs(x)) {
    const bool passed = co_await PassResponseSteps(x);
    if (!passed) co_return;
  }
  BodySource<false> source(upstream.stream, upstream.buffer, response, x.chains->limits().downstream_idle_timeout);
  // Content-Length body bytes that came with the upstream's header may go out with ours, in
  // one write: the first piece needs no read, so nothing holds the header back.
  const bool sent =
      co_await SendResponse(x, call, source, !response.is_done(), declared_length, upstream.buffer.size() > 0);
  if (!sent) co_return;
  const uint32_t max_requests = cluster ? cluster->config.max_requests_per_connection() : 0;
  call.reusable = response.is_done() && upstream_keep_alive &&
                  (max_requests == 0 || upstream.requests < max_requests);
}

awaitable<void> ExchangeRunner::RelayHttp2Response(Exchange& x, UpstreamCall& call) {
  Http2UpstreamStream& stream = *call.stream;
  // What the upstream's header said, before response steps could change it: the header
  // itself moves to them.
  const std::optional<uint64_t> declared_length = ContentLength(call.stream_response);
  const bool bodiless = Bodiless(call.stream_response.result_int(), x.ctx.request.method());
  const bool grpc = IsGrpc(x.ctx.request);
  const std::string header_grpc_status =
      grpc ? std::string(plugins::UnknownFieldValue(call.stream_response, "grpc-status")) : std::string();
  x.ctx.response = std::move(call.stream_response);
  if (!ResponsePassesAsIs(x)) {
    const bool passed = co_await PassResponseSteps(x);
    if (!passed) co_return;
  }
  Http2ResponseBody source{stream, x.chains->limits().downstream_idle_timeout};
  // Trailers without a body (a gRPC error after the header) still end the response. An
  // answer to HEAD, a 204 or a 304 has none, even if an empty DATA frame is still to come.
  const bool has_body = !bodiless && (!stream.done() || stream.trailers().begin() != stream.trailers().end());
  const bool sent = co_await SendResponse(x, call, source, has_body, declared_length, false);
  if (sent && grpc) {
    // The status is in the trailers, or in the header of a Trailers-Only response.
    const std::string_view status = plugins::UnknownFieldValue(stream.trailers(), "grpc-status");
    CountGrpc(x, status.empty() ? std::string_view(header_grpc_status) : status);
  }
}

template <typename Source>
awaitable<bool> ExchangeRunner::SendResponse(Exchange& x, const UpstreamCall& call, Source& source, bool has_body,
                                             std::optional<uint64_t> declared_length, bool hold) {
  BodyFilters filters(BodyPlugins(x, true), false, x.chains->limits().max_buffered_body_bytes);
  // A body step may change the length.
  const std::optional<uint64_t> length = filters.empty() ? declared_length : std::nullopt;
  // A request body that stopped short cannot be skipped: close after this response. One
  // still streaming (the pump) is judged when it ends.
  if (!down_.body_done() && !call.pump_running) down_.EndAfterResponse();
  // A response without a body says its length is 0, whatever its header said, unless its
  // status or the request's method means it has none anyway: an HTTP/2 answer that ended
  // with its header, or a 204/304 a response step turned into a 200, would otherwise be
  // read by an HTTP/1.1 client until the connection closed (RFC 9112 §6.3).
  if (!has_body && !Bodiless(x.ctx.response->result_int(), x.ctx.request.method()) &&
      (*x.ctx.response)[http::field::content_length] != "0") {
    x.ctx.response->set(http::field::content_length, "0");  // most already say 0
  }
  beast::error_code ec;
  x.response_started = true;
  if (net::Pending rest = down_.SendHeader(*x.ctx.response, has_body, length, hold, ec)) co_await std::move(*rest);
  std::string piece;
  while (!ec && has_body) {
    if (net::Pending rest = source.Next(piece, ec)) co_await std::move(*rest);
    if (ec && down_.header_held()) {
      // Nothing reached the client yet: it can still get a whole answer.
      x.response_started = false;
      co_await Respond(x, Error(502, Cat("bad upstream response: ", ec.message())), false);
      co_return false;
    }
    if (ec) break;
    const bool last = source.done();
    if (!filters.empty()) {
      Verdict v = co_await filters.Run(x.ctx, piece, last);
      // The header is gone; a body step can only end the response early.
      if (v.kind == Verdict::Kind::kRespond) ec = asio::error::operation_aborted;
    }
    if constexpr (requires { source.trailers(); }) {
      if (last) down_.SetTrailers(source.trailers());
    }
    if (!ec) {
      const size_t size = piece.size();
      if (net::Pending rest = down_.SendBody(piece, last, ec)) co_await std::move(*rest);
      if (!ec) x.ctx.response_body_bytes += size;
    }
    if (last) break;
  }
  if (ec) {
    // A response cut short: HTTP/1.1 can only signal it by closing, HTTP/2 by a reset.
    down_.EndAfterResponse();
    co_return false;
  }
  co_return true;
}


}  // namespace

awaitable<void> ServeExchange(const ProxyEnv& env, Downstream& downstream, ExchangeStart start) {
  return ExchangeRunner::Serve(ExchangeRunner(env, downstream), std::move(start));
}

}  // namespace meshplug::agent::proxy
