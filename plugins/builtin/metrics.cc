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
    // The status code; "0": no response was made, the client or the upstream went away.
    const unsigned code = ctx.response ? ctx.response->result_int() : 0;
    // Per thread and direction, reused request after request: no allocation once the
    // strings have grown, and the same labels and code as the last request (the usual
    // case: the same route and peers) add to its series without a look-up.
    struct Last {
      Stats::Labels labels;
      Stats::RenderedLabels rendered;
      std::string count_key;
      unsigned code = 0;
      Stats::RecordedSeries series;
    };
    thread_local Last by_direction[2];
    Last& last = by_direction[inbound()];
    SetTrafficLabels(last.labels, inbound(), ctx);
    last.labels.emplace_back("route", ctx.route);
    const std::string& latency_key = last.rendered.Of(last.labels);
    Stats& stats = state().stats;
    if (!last.rendered.changed() && code == last.code &&
        stats.Add(last.series, {{1}, {0, seconds}, {ctx.request_body_bytes}, {ctx.response_body_bytes}})) {
      return;
    }
    // The count's labels are the latency's and the status code.
    last.count_key.assign(latency_key, 0, latency_key.size() - 1);
    last.count_key += ",code=\"";
    last.count_key += std::to_string(code);
    last.count_key += "\"}";
    last.code = code;
    stats.Record({{"meshplug_http_requests_total", last.count_key, 1},
                  {"meshplug_http_request_duration_seconds", latency_key, 0, seconds},
                  {"meshplug_http_request_bytes_total", latency_key, ctx.request_body_bytes},
                  {"meshplug_http_response_bytes_total", latency_key, ctx.response_body_bytes}},
                 last.series);
  }
};

}  // namespace

const Maker<plugins::HttpPlugin> kMakeMetrics = MakeModule<Metrics>;

}  // namespace meshplug::plugins::builtin
