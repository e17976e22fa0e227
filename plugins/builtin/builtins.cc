#include "plugins/builtin/builtins.h"

#include <map>

#include "common/chain_info.h"
#include "common/strings.h"
#include "plugins/builtin/module.h"

namespace meshplug::plugins::builtin {
namespace {

using namespace builtin_names;

template <typename Plugin>
using Maker = std::shared_ptr<Plugin> (*)(std::string name, const BuiltinEnv&);

const std::map<std::string_view, Maker<plugins::HttpPlugin>>& HttpModules() {
  static const auto* modules = new std::map<std::string_view, Maker<plugins::HttpPlugin>>{
      {kHttpRouting, MakeHttpRouting},
      {kHttpLoadBalancing, MakeHttpLoadBalancing},
      {kHttpDefault, MakeHttpDefault},
      {kMetrics, MakeMetrics},
      {kLogging, MakeLogging},
      {kTracing, MakeTracing},
      {kCircuitBreaker, MakeCircuitBreaker},
      {kThrottleService, MakeThrottleService},
      {kThrottleRoute, MakeThrottleRoute},
      {kTlsTermination, MakeHttpTlsTermination},
  };
  return *modules;
}

const std::map<std::string_view, Maker<plugins::TcpPlugin>>& TcpModules() {
  static const auto* modules = new std::map<std::string_view, Maker<plugins::TcpPlugin>>{
      {kTcpRouting, MakeTcpRouting},
      {kTcpLoadBalancing, MakeTcpLoadBalancing},
      {kTcpDefault, MakeTcpDefault},
      {kTlsTermination, MakeTcpTlsTermination},
  };
  return *modules;
}

template <typename Plugin>
absl::StatusOr<std::shared_ptr<Plugin>> Make(
    const std::map<std::string_view, Maker<Plugin>>& modules, std::string_view kind,
    std::string_view name, const BuiltinEnv& env) {
  auto it = modules.find(name);
  if (it == modules.end()) {
    return absl::NotFoundError(Cat("no built-in ", kind, " module \"", name, "\""));
  }
  return it->second(std::string(name), env);
}

}  // namespace

absl::StatusOr<std::shared_ptr<plugins::HttpPlugin>> MakeHttpBuiltin(std::string_view name,
                                                                     const BuiltinEnv& env) {
  return Make(HttpModules(), "http", name, env);
}

absl::StatusOr<std::shared_ptr<plugins::TcpPlugin>> MakeTcpBuiltin(std::string_view name,
                                                                   const BuiltinEnv& env) {
  return Make(TcpModules(), "tcp", name, env);
}

}  // namespace meshplug::plugins::builtin
