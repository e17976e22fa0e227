// metrics: per-service request counts by status class and latency histograms.
#include <string>

#include "plugins/builtin/module.h"

namespace meshplug::plugins::builtin {
namespace {

using plugins::awaitable;
using plugins::Verdict;

// "2xx".."5xx", or "failed" when no response was made.
std::string StatusClass(const plugins::HttpContext& ctx) {
  if (!ctx.response) return "failed";
  return std::to_string(ctx.response->result_int() / 100) + "xx";
}

class Metrics final : public HttpObserver {
 public:
  using HttpObserver::HttpObserver;

  void OnLog(const plugins::HttpContext& ctx) override {
    std::string_view service =
        ctx.service.empty() ? std::string_view("unknown") : std::string_view(ctx.service);
    std::string status_class = StatusClass(ctx);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                                   ctx.started).count();
    state().stats.Count("meshplug_http_requests_total",
                        {{"direction", direction()}, {"service", service}, {"code", status_class}});
    state().stats.Observe("meshplug_http_request_duration_seconds",
                          {{"direction", direction()}, {"service", service}}, seconds);
  }
};

}  // namespace

const Maker<plugins::HttpPlugin> kMakeMetrics = MakeModule<Metrics>;

}  // namespace meshplug::plugins::builtin
