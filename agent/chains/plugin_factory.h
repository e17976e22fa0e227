// Where chain modules come from: built-ins by name, Lua plugins by source. The Lua runtime
// (plugins/lua) implements ScriptFactory; the agent passes it to ChainSetBuilder.
#pragma once

#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include "meshplug/v1/snapshot.pb.h"
#include "plugins/api/plugin.h"
#include "plugins/builtin/builtins.h"
#include "common/stats.h"

namespace meshplug::agent::chains {

class BuiltinFactory {
 public:
  virtual ~BuiltinFactory() = default;
  virtual absl::StatusOr<std::shared_ptr<plugins::HttpPlugin>> MakeHttp(
      std::string_view name, const plugins::builtin::BuiltinEnv& env) const = 0;
  virtual absl::StatusOr<std::shared_ptr<plugins::TcpPlugin>> MakeTcp(
      std::string_view name, const plugins::builtin::BuiltinEnv& env) const = 0;
};

// The modules of plugins/builtin.
class BuiltinModuleFactory : public BuiltinFactory {
 public:
  absl::StatusOr<std::shared_ptr<plugins::HttpPlugin>> MakeHttp(
      std::string_view name, const plugins::builtin::BuiltinEnv& env) const override {
    return plugins::builtin::MakeHttpBuiltin(name, env);
  }
  absl::StatusOr<std::shared_ptr<plugins::TcpPlugin>> MakeTcp(
      std::string_view name, const plugins::builtin::BuiltinEnv& env) const override {
    return plugins::builtin::MakeTcpBuiltin(name, env);
  }
};

class ScriptFactory {
 public:
  virtual ~ScriptFactory() = default;
  // An instance of `script` for an inbound or outbound chain; on an error (e.g. a compile
  // error) ChainSetBuilder isolates the plugin (its previous instance, or one that refuses
  // requests) and reports it.
  virtual absl::StatusOr<std::shared_ptr<plugins::HttpPlugin>> MakeHttp(
      const v1::PluginScript& script, bool inbound) const = 0;
  virtual absl::StatusOr<std::shared_ptr<plugins::TcpPlugin>> MakeTcp(
      const v1::PluginScript& script, bool inbound) const = 0;
  // Adds the runtime's own metrics (script errors it handled, script counters) to `stats`;
  // called each time /stats is rendered.
  virtual void ExportStats(Stats& /*stats*/) const {}
};

}  // namespace meshplug::agent::chains
