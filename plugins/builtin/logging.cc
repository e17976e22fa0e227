// logging: one JSON access log line per request, when AgentSettings.access_log is set.
#include <string>

#include "common/strings.h"
#include "plugins/api/http_fields.h"
#include "plugins/builtin/module.h"

namespace meshplug::plugins::builtin {
namespace {

using plugins::awaitable;
using plugins::Verdict;

class Logging final : public HttpObserver {
 public:
  using HttpObserver::HttpObserver;

  void OnLog(const plugins::HttpContext& ctx) override {
    if (!mesh().snapshot().settings().access_log() || !state().access_log) return;
    const auto& req = ctx.request;
    auto trace = ctx.shared.find(kTraceParentKey);
    std::string upstream =
        ctx.upstream && ctx.upstream->port != 0
            ? Cat(ctx.upstream->host, ":", ctx.upstream->port)
            : std::string();
    auto duration = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - ctx.started);
    state().access_log(Cat(
        "{\"time\":", JsonQuote(NowRfc3339Millis()),
        ",\"direction\":\"", direction(), "\",\"method\":", JsonQuote(req.method_string()),
        ",\"target\":", JsonQuote(req.target()),
        ",\"host\":", JsonQuote(plugins::FieldValue(req, plugins::http::field::host)),
        ",\"status\":", ctx.response ? ctx.response->result_int() : 0,
        ",\"service\":", JsonQuote(ctx.service), ",\"route\":", JsonQuote(ctx.route),
        ",\"upstream\":", JsonQuote(upstream),
        ",\"duration_ms\":", static_cast<double>(duration.count()) / 1000.0,
        ",\"traceparent\":", JsonQuote(trace == ctx.shared.end() ? "" : trace->second), "}"));
  }
};

}  // namespace

const Maker<plugins::HttpPlugin> kMakeLogging = MakeModule<Logging>;

}  // namespace meshplug::plugins::builtin
