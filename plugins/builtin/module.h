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

}  // namespace meshplug::plugins::builtin
