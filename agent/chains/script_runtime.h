// The agent's Lua plugin runtime: PluginScripts become plugins::lua::LuaPlugin instances.
//
// One LuaPlugin per script name and source (a script keeps its resource's name, its
// plugin's, when its source changes; a change of the Plugin's metadata alone keeps the
// running instance), shared by every chain set and both directions that mount it, and
// kept only while a chain set uses it. A script that does not load (a runtime error at top
// level, a bad phase function, ...) is an error for ChainSetBuilder, which isolates that
// plugin. Counters of one plugin carry over from version to version.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "agent/chains/plugin_factory.h"
#include "plugins/lua/options.h"

namespace meshplug::plugins::lua {
class LuaPlugin;
class PluginStats;
}  // namespace meshplug::plugins::lua

namespace meshplug::agent::chains {

class LuaScriptRuntime : public ScriptFactory {
 public:
  explicit LuaScriptRuntime(plugins::lua::LuaLimits limits = {}) : limits_(limits) {}

  absl::StatusOr<std::shared_ptr<plugins::HttpPlugin>> MakeHttp(const v1::PluginScript& script,
                                                                bool inbound) const override;
  absl::StatusOr<std::shared_ptr<plugins::TcpPlugin>> MakeTcp(const v1::PluginScript& script,
                                                              bool inbound) const override;
  // meshplug_lua_memory_bytes is the memory of all Lua states;
  // meshplug_plugin_errors_total{plugin} grows by the errors the runtime handled itself (a
  // script error answers 500 without reaching the proxy's own count);
  // meshplug_plugin_tally{plugin,name} holds each counter() a script keeps.
  void ExportStats(Stats& stats) const override;

 private:
  absl::StatusOr<std::shared_ptr<plugins::lua::LuaPlugin>> Get(const v1::PluginScript& script) const;

  const plugins::lua::LuaLimits limits_;
  mutable std::mutex mu_;
  // By script name and source.
  mutable std::map<std::pair<std::string, std::string>, std::weak_ptr<plugins::lua::LuaPlugin>> plugins_;
  mutable std::map<std::string, std::shared_ptr<plugins::lua::PluginStats>> stats_;  // by plugin name
  mutable std::map<std::string, uint64_t> exported_errors_;                          // by plugin name
};

// The ScriptFactory //agent:agent builds chain sets with: `limits` for every call of
// every plugin; `total_memory_bytes` caps the memory of all Lua states of the process
// together (0: no cap beyond each state's own).
std::unique_ptr<ScriptFactory> MakeScriptRuntime(plugins::lua::LuaLimits limits = {}, size_t total_memory_bytes = 0);

}  // namespace meshplug::agent::chains
