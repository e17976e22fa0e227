// http-default and tcp-default: the last modules of a chain, answering what nothing
// before them answered or forwarded.
#include "plugins/builtin/module.h"

namespace meshplug::plugins::builtin {
namespace {

using plugins::awaitable;
using plugins::Verdict;

class HttpDefault final : public HttpRequestModule {
 public:
  using HttpRequestModule::HttpRequestModule;

  Verdict RequestHeaders(plugins::HttpContext& ctx) override {
    if (ctx.route.empty()) return Verdict::Respond(403, "access denied: no route\n");
    return Verdict::Respond(404, "not found\n");
  }
};

class TcpDefault final : public Module<plugins::TcpPlugin> {
 public:
  using Module::Module;

  // Close the connection.
  awaitable<Verdict> OnConnect(plugins::TcpContext&) override {
    co_return Verdict::Respond(0);
  }
};

}  // namespace

const Maker<plugins::HttpPlugin> kMakeHttpDefault = MakeModule<HttpDefault>;
const Maker<plugins::TcpPlugin> kMakeTcpDefault = MakeModule<TcpDefault>;

}  // namespace meshplug::plugins::builtin
