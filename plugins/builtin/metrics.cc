// metrics: the golden metrics of every request: count by status code and latency, labelled
// by source, destination and route (plugins/api/traffic_labels.h).
#include <string>

#include "plugins/api/traffic_labels.h"
#include "plugins/builtin/module.h"

namespace meshplug::plugins::builtin {
namespace {

class Metrics final : public HttpObserver {
 public:
  using HttpObserver::HttpObserver;

  void OnLog(const plugins::HttpContext& ctx) override {
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - ctx.started).count();
    // Reused by every request of this thread: no allocation once it has grown.
    thread_local Stats::Labels labels;
    SetTrafficLabels(labels, inbound(),
                     PartiesOf(inbound(), ctx.workload, ctx.service, ctx.peer_identity, ctx.upstream));
    labels.emplace_back("route", ctx.route);
    state().stats.Observe("meshplug_http_request_duration_seconds", labels, seconds);
    // "0": no response was made (the client or the upstream went away).
    const std::string code = ctx.response ? std::to_string(ctx.response->result_int()) : "0";
    labels.emplace_back("code", code);
    state().stats.Count("meshplug_http_requests_total", labels);
  }
};

}  // namespace

const Maker<plugins::HttpPlugin> kMakeMetrics = MakeModule<Metrics>;

}  // namespace meshplug::plugins::builtin
