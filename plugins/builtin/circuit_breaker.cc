// circuit-breaker: per cluster, opened by consecutive errors or slow responses (Cluster.
// circuit_breaker); while open, requests to the cluster are answered locally.
#include "plugins/builtin/module.h"

namespace meshplug::plugins::builtin {
namespace {

using plugins::Verdict;

// Marks a request this module answered, so its own reply is not counted as an error.
constexpr std::string_view kOpenKey = "circuit-breaker.open";

class CircuitBreaker final : public HttpRequestModule {
 public:
  using HttpRequestModule::HttpRequestModule;

  Verdict RequestHeaders(plugins::HttpContext& ctx) override {
    const v1::CircuitBreaker* config = ConfigFor(ctx);
    if (config == nullptr || !state().breakers.IsOpen(ctx.upstream->cluster, Clock::now())) {
      return Verdict::Continue();
    }
    ctx.shared.insert_or_assign(std::string(kOpenKey), "1");
    state().stats.Count("meshplug_circuit_breaker_rejected_total",
                        {{"cluster", ctx.upstream->cluster}});
    return Verdict::Respond(config->status() != 0 ? config->status() : 503,
                               config->body().empty() ? "circuit open\n" : config->body());
  }

  void OnLog(const plugins::HttpContext& ctx) override {
    const v1::CircuitBreaker* config = ConfigFor(ctx);
    if (config == nullptr || ctx.shared.contains(kOpenKey)) return;
    bool error = !ctx.response || ctx.response->result_int() >= 500;
    bool slow = config->has_slow_threshold() &&
                Clock::now() - ctx.started >
                    routing::DurationOr(config->slow_threshold(), true, std::chrono::milliseconds(0));
    state().breakers.Record(ctx.upstream->cluster, *config, error, slow, Clock::now());
  }

 private:
  // The routed cluster's breaker settings; nullptr when it has none.
  const v1::CircuitBreaker* ConfigFor(const plugins::HttpContext& ctx) const {
    if (!ctx.upstream) return nullptr;
    const routing::ClusterView* cluster = mesh().FindCluster(ctx.upstream->cluster);
    if (cluster == nullptr || !cluster->config.has_circuit_breaker()) return nullptr;
    return &cluster->config.circuit_breaker();
  }
};

}  // namespace

const Maker<plugins::HttpPlugin> kMakeCircuitBreaker = MakeModule<CircuitBreaker>;

}  // namespace meshplug::plugins::builtin
