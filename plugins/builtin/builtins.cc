#include "plugins/builtin/builtins.h"

#include <vector>

#include "common/chain_info.h"
#include "common/strings.h"
#include "plugins/builtin/module.h"

namespace meshplug::plugins::builtin {
namespace {

using namespace builtin_names;

// Every built-in module: its name and its maker for http chains, tcp chains or both.
struct Entry {
  std::string_view name;
  Maker<plugins::HttpPlugin> http;
  Maker<plugins::TcpPlugin> tcp;
};

const std::vector<Entry>& Modules() {
  static const auto* modules = new std::vector<Entry>{
      {kTlsTermination, kMakeHttpTlsTermination, kMakeTcpTlsTermination},
      {kHttpRouting, kMakeHttpRouting, nullptr},
      {kMetrics, kMakeMetrics, nullptr},
      {kTracing, kMakeTracing, nullptr},
      {kLogging, kMakeLogging, nullptr},
      {kThrottleService, kMakeThrottleService, nullptr},
      {kThrottleRoute, kMakeThrottleRoute, nullptr},
      {kCircuitBreaker, kMakeCircuitBreaker, nullptr},
      {kHttpLoadBalancing, kMakeHttpLoadBalancing, nullptr},
      {kHttpDefault, kMakeHttpDefault, nullptr},
      {kTcpRouting, nullptr, kMakeTcpRouting},
      {kTcpLoadBalancing, nullptr, kMakeTcpLoadBalancing},
      {kTcpDefault, nullptr, kMakeTcpDefault},
  };
  return *modules;
}

template <typename Plugin>
absl::StatusOr<std::shared_ptr<Plugin>> Make(Maker<Plugin> Entry::*maker, std::string_view kind,
                                              std::string_view name, const BuiltinEnv& env) {
  for (const Entry& e : Modules()) {
    if (e.name == name && e.*maker != nullptr) return (e.*maker)(std::string(name), env);
  }
  return absl::NotFoundError(Cat("no built-in ", kind, " module \"", name, "\""));
}

}  // namespace

absl::StatusOr<std::shared_ptr<plugins::HttpPlugin>> MakeHttpBuiltin(std::string_view name,
                                                                     const BuiltinEnv& env) {
  return Make(&Entry::http, "http", name, env);
}

absl::StatusOr<std::shared_ptr<plugins::TcpPlugin>> MakeTcpBuiltin(std::string_view name,
                                                                   const BuiltinEnv& env) {
  return Make(&Entry::tcp, "tcp", name, env);
}

}  // namespace meshplug::plugins::builtin
