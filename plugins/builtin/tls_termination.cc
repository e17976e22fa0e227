// tls-termination: first module of the inbound chains (docs/spec.md §5). The agent itself
// terminates mTLS where a connection arrives (the HTTP parser and a tunnel's CONNECT need
// the plaintext), before any chain runs, and puts the verified caller in the context
// (HttpContext/TcpContext::peer_identity); the module holds its place so the chain order
// is the one users configure and see in config_dump.
#include "plugins/builtin/module.h"

namespace meshplug::plugins::builtin {
namespace {

using plugins::awaitable;
using plugins::Verdict;

class HttpTlsTermination final : public HttpObserver {
 public:
  using HttpObserver::HttpObserver;
};

class TcpTlsTermination final : public Module<plugins::TcpPlugin> {
 public:
  using Module::Module;
  awaitable<Verdict> OnConnect(plugins::TcpContext&) override { co_return Verdict::Continue(); }
};

}  // namespace

const Maker<plugins::HttpPlugin> kMakeHttpTlsTermination = MakeModule<HttpTlsTermination>;
const Maker<plugins::TcpPlugin> kMakeTcpTlsTermination = MakeModule<TcpTlsTermination>;

}  // namespace meshplug::plugins::builtin
