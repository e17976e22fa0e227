// tls-termination: first module of the inbound chains (SPEC §5). Snapshots carry no
// workload certificates yet (mTLS, SPEC §9, comes with the certificate authority), so
// connections arrive in plain text and the module passes them on; it holds its place so
// the chain order is the one users configure and see in config_dump.
#include "plugins/builtin/module.h"

namespace meshplug::plugins::builtin {
namespace {

using plugins::awaitable;
using plugins::Verdict;

class HttpTlsTermination final : public Module<plugins::HttpPlugin> {
 public:
  using Module::Module;
  awaitable<Verdict> OnRequestHeaders(plugins::HttpContext&) override { co_return Verdict::Continue(); }
};

class TcpTlsTermination final : public Module<plugins::TcpPlugin> {
 public:
  using Module::Module;
  awaitable<Verdict> OnConnect(plugins::TcpContext&) override { co_return Verdict::Continue(); }
};

}  // namespace

std::shared_ptr<plugins::HttpPlugin> MakeHttpTlsTermination(std::string name, const BuiltinEnv& env) {
  return std::make_shared<HttpTlsTermination>(std::move(name), env);
}

std::shared_ptr<plugins::TcpPlugin> MakeTcpTlsTermination(std::string name, const BuiltinEnv& env) {
  return std::make_shared<TcpTlsTermination>(std::move(name), env);
}

}  // namespace meshplug::plugins::builtin
