#include "plugins/builtin/builtins.h"

#include <map>

#include "common/strings.h"

namespace meshplug::plugins::builtin {
namespace {

template <typename Plugin>
using Maker = std::shared_ptr<Plugin> (*)(const BuiltinEnv&);

const std::map<std::string_view, Maker<plugins::HttpPlugin>>& HttpModules() {
  static const auto* modules = new std::map<std::string_view, Maker<plugins::HttpPlugin>>{
      {"http-routing", MakeHttpRouting},
      {"http-load-balancing", MakeHttpLoadBalancing},
      {"http-default", MakeHttpDefault},
      {"metrics", MakeMetrics},
      {"logging", MakeLogging},
      {"tracing", MakeTracing},
      {"circuit-breaker", MakeCircuitBreaker},
      {"throttle-service", MakeThrottleService},
      {"throttle-route", MakeThrottleRoute},
      {"tls-termination", MakeHttpTlsTermination},
  };
  return *modules;
}

const std::map<std::string_view, Maker<plugins::TcpPlugin>>& TcpModules() {
  static const auto* modules = new std::map<std::string_view, Maker<plugins::TcpPlugin>>{
      {"tcp-routing", MakeTcpRouting},
      {"tcp-load-balancing", MakeTcpLoadBalancing},
      {"tcp-default", MakeTcpDefault},
      {"tls-termination", MakeTcpTlsTermination},
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
  return it->second(env);
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
