// http-load-balancing and tcp-load-balancing: choose an endpoint of the routed cluster and
// hand the request or connection to the agent's forwarder (Forward). Connection pools,
// timeouts and retries are the forwarder's, configured by the same Cluster.
#include "plugins/builtin/module.h"

namespace meshplug::plugins::builtin {
namespace {

using plugins::awaitable;
using plugins::Verdict;

// Fills `upstream` with an endpoint of its cluster. False when the cluster has none.
bool ChooseEndpoint(const routing::MeshView& mesh, plugins::UpstreamTarget& upstream) {
  const routing::ClusterView* cluster = mesh.FindCluster(upstream.cluster);
  if (cluster == nullptr) return false;
  std::optional<size_t> i = cluster->lb->Pick();
  if (!i) return false;
  routing::SetEndpoint(upstream, cluster->lb->endpoint(*i));
  return true;
}

class HttpLoadBalancing final : public HttpRequestModule {
 public:
  using HttpRequestModule::HttpRequestModule;

  Verdict RequestHeaders(plugins::HttpContext& ctx) override {
    if (!ctx.upstream) return Verdict::Continue();
    if (!ChooseEndpoint(mesh(), *ctx.upstream)) {
      return Verdict::Respond(503, "no healthy upstream\n");
    }
    return Verdict::Forward();
  }
};

class TcpLoadBalancing final : public Module<plugins::TcpPlugin> {
 public:
  using Module::Module;

  // An upstream that routing already addressed (egress passthrough) goes as it is.
  awaitable<Verdict> OnConnect(plugins::TcpContext& ctx) override {
    if (!ctx.upstream || (ctx.upstream->port == 0 && !ChooseEndpoint(mesh(), *ctx.upstream))) {
      co_return Verdict::Continue();
    }
    co_return Verdict::Forward();
  }
};

}  // namespace

const Maker<plugins::HttpPlugin> kMakeHttpLoadBalancing = MakeModule<HttpLoadBalancing>;
const Maker<plugins::TcpPlugin> kMakeTcpLoadBalancing = MakeModule<TcpLoadBalancing>;

}  // namespace meshplug::plugins::builtin
