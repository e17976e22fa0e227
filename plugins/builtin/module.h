// Common base of the built-in modules: the name and the environment they were built with.
#pragma once

#include <string>
#include <utility>

#include "plugins/builtin/builtins.h"

namespace meshplug::plugins::builtin {

template <typename Plugin>
class Module : public Plugin {
 public:
  Module(std::string name, BuiltinEnv env) : name_(std::move(name)), env_(std::move(env)) {}
  const std::string& name() const override { return name_; }

 protected:
  const routing::MeshView& mesh() const { return *env_.mesh; }
  bool inbound() const { return env_.inbound; }
  BuiltinState& state() const { return *env_.state; }
  const char* direction() const { return env_.inbound ? "inbound" : "outbound"; }

 private:
  std::string name_;
  BuiltinEnv env_;
};

// Each module's maker; MakeHttpBuiltin/MakeTcpBuiltin look them up by name.
std::shared_ptr<plugins::HttpPlugin> MakeHttpRouting(std::string name, const BuiltinEnv& env);
std::shared_ptr<plugins::HttpPlugin> MakeHttpLoadBalancing(std::string name, const BuiltinEnv& env);
std::shared_ptr<plugins::HttpPlugin> MakeHttpDefault(std::string name, const BuiltinEnv& env);
std::shared_ptr<plugins::HttpPlugin> MakeMetrics(std::string name, const BuiltinEnv& env);
std::shared_ptr<plugins::HttpPlugin> MakeLogging(std::string name, const BuiltinEnv& env);
std::shared_ptr<plugins::HttpPlugin> MakeTracing(std::string name, const BuiltinEnv& env);
std::shared_ptr<plugins::HttpPlugin> MakeCircuitBreaker(std::string name, const BuiltinEnv& env);
std::shared_ptr<plugins::HttpPlugin> MakeThrottleService(std::string name, const BuiltinEnv& env);
std::shared_ptr<plugins::HttpPlugin> MakeThrottleRoute(std::string name, const BuiltinEnv& env);
std::shared_ptr<plugins::TcpPlugin> MakeTcpRouting(std::string name, const BuiltinEnv& env);
std::shared_ptr<plugins::TcpPlugin> MakeTcpLoadBalancing(std::string name, const BuiltinEnv& env);
std::shared_ptr<plugins::TcpPlugin> MakeTcpDefault(std::string name, const BuiltinEnv& env);
std::shared_ptr<plugins::HttpPlugin> MakeHttpTlsTermination(std::string name, const BuiltinEnv& env);
std::shared_ptr<plugins::TcpPlugin> MakeTcpTlsTermination(std::string name, const BuiltinEnv& env);

}  // namespace meshplug::plugins::builtin
