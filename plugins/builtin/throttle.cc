// throttle-service and throttle-route: token-bucket rate limits of inbound requests per
// service (TrafficPolicy.rate_limit) and per route (HttpRoute.rate_limit).
#include "plugins/builtin/module.h"
#include "common/strings.h"

namespace meshplug::plugins::builtin {
namespace {

using plugins::Verdict;

// kPerRoute: per route (throttle-route), else per service (throttle-service).
template <bool kPerRoute>
class Throttle final : public HttpRequestModule {
 public:
  using HttpRequestModule::HttpRequestModule;

  Verdict RequestHeaders(plugins::HttpContext& ctx) override {
    const v1::RateLimit* limit = LimitFor(ctx);
    if (limit == nullptr || limit->requests() == 0) return Verdict::Continue();
    std::string key = kPerRoute ? Cat(ctx.service, "/", ctx.route) : ctx.service;
    if (state().limiters.TryTake(key, *limit, Clock::now())) return Verdict::Continue();
    state().stats.Count("meshplug_http_rate_limited_total",
                        {{"service", ctx.service}, {"limit", name()}});
    plugins::http::fields headers;
    for (const auto& [field, value] : limit->response_headers()) headers.set(field, value);
    return Verdict::Respond(limit->response_status() != 0 ? limit->response_status() : 429,
                               "rate limited\n", std::move(headers));
  }

 private:
  const v1::RateLimit* LimitFor(const plugins::HttpContext& ctx) const {
    if (kPerRoute) {
      const v1::HttpRoute* route = mesh().FindRoute(ctx.service, ctx.route, /*inbound=*/true);
      return route != nullptr && route->has_rate_limit() ? &route->rate_limit() : nullptr;
    }
    const routing::ServiceView* service = mesh().FindServiceByName(ctx.service, /*inbound=*/true);
    if (service == nullptr) return nullptr;
    return service->config->traffic().has_rate_limit() ? &service->config->traffic().rate_limit() : nullptr;
  }
};

}  // namespace

const Maker<plugins::HttpPlugin> kMakeThrottleService = MakeModule<Throttle<false>>;
const Maker<plugins::HttpPlugin> kMakeThrottleRoute = MakeModule<Throttle<true>>;

}  // namespace meshplug::plugins::builtin
