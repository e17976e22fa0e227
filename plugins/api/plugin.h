// The one plugin interface that built-in modules and Lua scripts both implement.
//
// A chain is an ordered list of plugins (highest priority first). For HTTP, the agent
// runs every plugin's request steps in chain order until one answers (Respond) or hands
// the request to an upstream (Forward); the response steps then run in reverse order over
// the plugins whose request steps ran, like Envoy's decoder/encoder filters. A step is an
// Asio coroutine: a plugin that must wait (an HTTP call, a timer) co_awaits inside the
// step, which suspends only this request and never blocks the worker thread.
#pragma once

#include <utility>  // Boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace google::protobuf {
class Struct;
}

namespace meshplug::net {
class UpstreamPool;    // net/upstream_pool.h
class TlsCredentials;  // net/tls.h
}

namespace meshplug::plugins {

namespace http = boost::beast::http;
template <typename T>
using awaitable = boost::asio::awaitable<T>;

// A reply the chain makes itself instead of (or after) asking an upstream.
struct LocalResponse {
  unsigned status = 200;
  http::fields headers;
  std::string body;
};

// What a step decided.
struct Verdict {
  enum class Kind {
    kContinue,  // run the next plugin of the chain
    kRespond,   // answer with `response`; no later request step runs
    kForward,   // send the request to HttpContext::upstream; no later request step runs
  };
  Kind kind = Kind::kContinue;
  LocalResponse response;  // only for kRespond

  static Verdict Continue() { return {}; }
  static Verdict Forward() { return {Kind::kForward, {}}; }
  static Verdict Respond(unsigned status, std::string body = {}, http::fields headers = {}) {
    return {Kind::kRespond, LocalResponse{status, std::move(headers), std::move(body)}};
  }
};

// Who runs the chain: the agent's own workload.
struct WorkloadIdentity {
  std::string name;
  std::string ns;
  std::string service_account;
  std::map<std::string, std::string> labels;
};

// PluginConfig values of one chain set: service ("name.namespace") → plugin → config.
class PluginConfigs {
 public:
  virtual ~PluginConfigs() = default;
  // nullptr when the service has no config for the plugin.
  virtual const google::protobuf::Struct* Find(std::string_view service,
                                               std::string_view plugin) const = 0;
};

// Where the request goes, once a routing/load-balancing plugin has decided.
struct UpstreamTarget {
  std::string cluster;
  std::string host;  // IP literal or name
  uint16_t port = 0;
  std::string identity;  // the SPIFFE ID of the agent in front of it (mTLS); "" for none
  // "<workload>.<namespace>" of the chosen endpoint, for metrics: a view into the chain set
  // the request runs on, which outlives it. Empty when not a mesh workload.
  std::string_view workload;
};

// Where a mesh service name ("ext-auth.auth:8079") leads from the chain set a request runs
// on, so a plugin's own calls reach mesh services without DNS.
class ServiceResolver {
 public:
  virtual ~ServiceResolver() = default;
  // An endpoint of the service `host_port` names, or nullopt when it names none.
  virtual std::optional<UpstreamTarget> Resolve(std::string_view host_port) const = 0;
};

// State of one request, shared by every plugin of the chain run that serves it.
struct HttpContext {
  http::request_header<> request;
  // Set when the response phase starts (from the upstream or a local reply).
  std::optional<http::response_header<>> response;

  // The service the request is for: the destination (outbound) or this workload's own
  // service (inbound), as "name.namespace". Set by http-routing; empty if no route matched.
  std::string service;
  std::string route;
  std::optional<UpstreamTarget> upstream;
  // The caller's SPIFFE ID, verified by mTLS on an inbound connection; empty otherwise.
  std::string peer_identity;

  const WorkloadIdentity* workload = nullptr;
  const PluginConfigs* configs = nullptr;
  const ServiceResolver* resolver = nullptr;
  // The worker thread's kept-alive upstream connections, for a plugin's own HTTP calls
  // (http_call). Not thread-safe: use it only on the worker that runs the step. Null
  // outside the agent (calls then use a connection each).
  net::UpstreamPool* pool = nullptr;
  // The workload certificate, for http_call to mesh services behind an agent (mTLS).
  const net::TlsCredentials* tls = nullptr;

  // Values a plugin leaves for later plugins of the same request (string keys/values).
  std::map<std::string, std::string, std::less<>> shared;

  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  // Body bytes sent so far to the upstream and to the client (the metrics module counts
  // them when the request ends).
  uint64_t request_body_bytes = 0;
  uint64_t response_body_bytes = 0;

  const google::protobuf::Struct* ConfigFor(std::string_view plugin) const {
    return configs ? configs->Find(service, plugin) : nullptr;
  }
};

// How a plugin wants to see a body.
enum class BodyMode {
  kNone,    // body steps are not called; the body streams past
  kStream,  // called once per chunk as it passes
  kBuffer,  // called once with the whole body (the agent buffers it, up to its limit)
};

class HttpPlugin {
 public:
  virtual ~HttpPlugin() = default;

  virtual const std::string& name() const = 0;

  virtual BodyMode request_body_mode() const { return BodyMode::kNone; }
  virtual BodyMode response_body_mode() const { return BodyMode::kNone; }
  // False for a header step that does nothing (OnRequestHeaders is still defined): a chain
  // neither calls nor times it. A plugin whose step does something must not say false.
  virtual bool has_request_header_step() const { return true; }
  virtual bool has_response_header_step() const { return true; }

  virtual awaitable<Verdict> OnRequestHeaders(HttpContext& ctx) = 0;
  // `chunk` may be changed in place; `last` marks the end of the body.
  virtual awaitable<Verdict> OnRequestBody(HttpContext&, std::string& /*chunk*/, bool /*last*/) {
    co_return Verdict::Continue();
  }
  // Continue or Respond (replaces the response while its headers have not gone out).
  virtual awaitable<Verdict> OnResponseHeaders(HttpContext&) { co_return Verdict::Continue(); }
  virtual awaitable<Verdict> OnResponseBody(HttpContext&, std::string& /*chunk*/,
                                            bool /*last*/) {
    co_return Verdict::Continue();
  }
  // After the last byte of the response went out (or the request failed); cannot change it.
  virtual void OnLog(const HttpContext&) {}
};

// A plugin whose request header step never suspends and that has no response header
// step (the built-in modules). The agent calls RequestHeaders directly, without a
// coroutine frame per step; the awaitable form serves everyone else.
class ImmediateHttpPlugin : public HttpPlugin {
 public:
  virtual Verdict RequestHeaders(HttpContext& ctx) = 0;

  awaitable<Verdict> OnRequestHeaders(HttpContext& ctx) final { co_return RequestHeaders(ctx); }
  // Never called (no response header step): final, so that no module writes one in vain.
  awaitable<Verdict> OnResponseHeaders(HttpContext&) final { co_return Verdict::Continue(); }
  bool has_response_header_step() const final { return false; }
};

// State of one TCP connection through a tcp chain.
struct TcpContext {
  // The service ("name.namespace") and its port the connection is for; set by tcp-routing.
  std::string service;
  uint32_t service_port = 0;
  std::optional<UpstreamTarget> upstream;
  const WorkloadIdentity* workload = nullptr;
  const PluginConfigs* configs = nullptr;
  const ServiceResolver* resolver = nullptr;
  net::UpstreamPool* pool = nullptr;  // as in HttpContext
  const net::TlsCredentials* tls = nullptr;
  std::string peer;  // "ip:port" of the downstream
  // The agent port that accepted the connection (it selects the service), and for an
  // intercepted connection where it was going (tcp-routing routes by them).
  uint16_t listen_port = 0;
  std::optional<boost::asio::ip::tcp::endpoint> original;
  // The calling agent's SPIFFE ID, verified by mTLS, on an inbound connection that came
  // through a tunnel between agents; empty otherwise.
  std::string peer_identity;
  std::map<std::string, std::string, std::less<>> shared;

  const google::protobuf::Struct* ConfigFor(std::string_view plugin) const {
    return configs ? configs->Find(service, plugin) : nullptr;
  }
};

// Keys of HttpContext::shared / TcpContext::shared that the agent and the built-in modules
// both use.
inline constexpr std::string_view kTraceParentKey = "traceparent";

enum class Direction { kDownstreamToUpstream, kUpstreamToDownstream };

class TcpPlugin {
 public:
  virtual ~TcpPlugin() = default;

  virtual const std::string& name() const = 0;

  // Continue, Forward (connect to ctx.upstream) or Respond (close the connection; a
  // non-empty body is written first).
  virtual awaitable<Verdict> OnConnect(TcpContext& ctx) = 0;
  // `data` may be changed in place; Respond closes the connection.
  virtual awaitable<Verdict> OnData(TcpContext&, Direction, std::string& /*data*/) {
    co_return Verdict::Continue();
  }
  virtual void OnClose(const TcpContext&) {}
};

}  // namespace meshplug::plugins
