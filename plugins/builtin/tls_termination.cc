// tls-termination: first module of the inbound chains (docs/spec.md §5). Snapshots carry no
// workload certificates yet (mTLS, docs/spec.md §9, comes with the certificate authority), so
// connections arrive in plain text and the module passes them on; it holds its place so
// the chain order is the one users configure and see in config_dump.
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
