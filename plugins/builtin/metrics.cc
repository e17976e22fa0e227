// metrics: the golden metrics of every request: count by status code, latency and body
// bytes, labelled by source, destination and route (plugins/api/traffic_labels.h).
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
    // Reused by every request of this thread: no allocation once they have grown.
    thread_local Stats::Labels labels;
    thread_local Stats::RenderedLabels rendered;
    thread_local std::string count_key;
    SetTrafficLabels(labels, inbound(), ctx);
    labels.emplace_back("route", ctx.route);
    const std::string& latency_key = rendered.Of(labels);
    // The count's labels are the latency's and the status code ("0": no response was
    // made, the client or the upstream went away).
    count_key.assign(latency_key, 0, latency_key.size() - 1);
    count_key += ",code=\"";
    count_key += ctx.response ? std::to_string(ctx.response->result_int()) : "0";
    count_key += "\"}";
    state().stats.Record({{"meshplug_http_requests_total", count_key, 1},
                          {"meshplug_http_request_duration_seconds", latency_key, 0, seconds},
                          {"meshplug_http_request_bytes_total", latency_key, ctx.request_body_bytes},
                          {"meshplug_http_response_bytes_total", latency_key, ctx.response_body_bytes}});
  }
};

}  // namespace

const Maker<plugins::HttpPlugin> kMakeMetrics = MakeModule<Metrics>;

}  // namespace meshplug::plugins::builtin
