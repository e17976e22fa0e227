// http-routing and tcp-routing: choose the service, route and cluster of a request or
// connection; the load-balancing modules choose the endpoint.
//
// Weighted splits draw a random ticket per request (RandomU64), not a counter of the
// module instance: instances live as long as one chain set, and a counter starting at 0
// on every snapshot would send most requests to the first cluster when snapshots come
// often.
#include <boost/asio/ip/address.hpp>

#include "common/random.h"
#include "plugins/builtin/module.h"

namespace meshplug::plugins::builtin {
namespace {

using plugins::awaitable;
using plugins::Verdict;

class HttpRouting final : public HttpRequestModule {
 public:
  using HttpRequestModule::HttpRequestModule;

  // Host → service → first matching route → a cluster by weight. Leaves ctx.route empty
  // when nothing matched, which http-default answers with 403.
  Verdict RequestHeaders(plugins::HttpContext& ctx) override {
    routing::RouteChoice choice = mesh().Route(ctx.request, inbound());
    if (choice.service == nullptr) return Verdict::Continue();
    ctx.service = choice.service->config->name();
    if (choice.route == nullptr) return Verdict::Continue();
    ctx.route = choice.route->config->name();
    const std::string* cluster = routing::PickWeighted(choice.route->config->clusters(), RandomU64());
    if (cluster != nullptr) ctx.upstream.emplace().cluster = *cluster;
    return Verdict::Continue();
  }
};

// A destination egress may pass through to: not loopback or link-local (cloud metadata
// services at 169.254.169.254 and the like), which the agent could reach as itself.
bool Passable(const boost::asio::ip::address& a) {
  if (a.is_loopback() || a.is_unspecified() || a.is_multicast()) return false;
  if (a.is_v4()) return (a.to_v4().to_uint() >> 16) != 0xa9fe;  // 169.254.0.0/16
  return !a.to_v6().is_link_local() && !a.to_v6().is_v4_mapped();
}

class TcpRouting final : public Module<plugins::TcpPlugin> {
 public:
  using Module::Module;

  // The listener's service port → a cluster by weight. A tunnel: the service port it named.
  // An intercepted connection: the service port of its original destination (outbound: a Service's virtual address;
  // inbound: this workload's app port), else that destination itself (outbound: egress
  // passthrough unless MeshConfig refuses it).
  awaitable<Verdict> OnConnect(plugins::TcpContext& ctx) override {
    // A tunnel from another agent names the service port itself.
    if (!ctx.service.empty()) {
      if (auto port = mesh().FindServicePort(ctx.service, ctx.service_port, inbound())) Route(ctx, *port);
      co_return Verdict::Continue();
    }
    if (ctx.original) {
      const auto& ip = ctx.original->address();
      const uint16_t original_port = ctx.original->port();
      if (std::optional<routing::TcpPortView> port = mesh().FindOriginalPort(*ctx.original, inbound())) {
        Route(ctx, *port);
      } else if (inbound() ? Passable(ip)  // a port of this workload no Service names: to it as sent
                           : !mesh().snapshot().settings().egress_refused() && Passable(ip)) {
        ctx.service = "passthrough";
        plugins::UpstreamTarget& target = ctx.upstream.emplace();
        target.cluster = "passthrough";
        target.host = ip.to_string();
        target.port = original_port;
      }
      co_return Verdict::Continue();
    }
    if (std::optional<routing::TcpPortView> port = mesh().FindTcpPort(ctx.listen_port, inbound())) Route(ctx, *port);
    co_return Verdict::Continue();
  }

 private:
  static void Route(plugins::TcpContext& ctx, const routing::TcpPortView& port) {
    ctx.service = port.service->config->name();
    ctx.service_port = port.port->port();
    const std::string* cluster = routing::PickWeighted(port.port->tcp_clusters(), RandomU64());
    if (cluster != nullptr) ctx.upstream.emplace().cluster = *cluster;
  }
};

}  // namespace

const Maker<plugins::HttpPlugin> kMakeHttpRouting = MakeModule<HttpRouting>;
const Maker<plugins::TcpPlugin> kMakeTcpRouting = MakeModule<TcpRouting>;

}  // namespace meshplug::plugins::builtin
