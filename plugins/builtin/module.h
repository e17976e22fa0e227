// Common base of the built-in modules: the name and the environment they were built with.
#pragma once

#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "plugins/builtin/builtins.h"

namespace meshplug::plugins::builtin {

template <typename Plugin>
class Module : public Plugin {
 public:
  // What the module is made as: an immediate HTTP plugin is one of the HTTP chain's plugins.
  using Interface = std::conditional_t<std::is_base_of_v<plugins::HttpPlugin, Plugin>, plugins::HttpPlugin, Plugin>;

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

// A module with a request header step only (routing, balancing, policy).
using HttpRequestModule = Module<plugins::ImmediateHttpPlugin>;

// A module that only watches requests (its steps after the request headers).
class HttpObserver : public HttpRequestModule {
 public:
  using HttpRequestModule::HttpRequestModule;
  plugins::Verdict RequestHeaders(plugins::HttpContext&) final { return plugins::Verdict::Continue(); }
  bool has_request_header_step() const final { return false; }
};

template <typename Plugin>
using Maker = std::shared_ptr<Plugin> (*)(std::string name, const BuiltinEnv& env);

template <typename M>
std::shared_ptr<typename M::Interface> MakeModule(std::string name, const BuiltinEnv& env) {
  return std::make_shared<M>(std::move(name), env);
}

// Each module's maker, defined next to the module; builtins.cc maps names to them.
extern const Maker<plugins::HttpPlugin> kMakeHttpRouting, kMakeHttpLoadBalancing, kMakeHttpDefault, kMakeMetrics,
    kMakeLogging, kMakeTracing, kMakeCircuitBreaker, kMakeThrottleService, kMakeThrottleRoute, kMakeHttpTlsTermination;
extern const Maker<plugins::TcpPlugin> kMakeTcpRouting, kMakeTcpLoadBalancing, kMakeTcpDefault, kMakeTcpTlsTermination;

}  // namespace meshplug::plugins::builtin
