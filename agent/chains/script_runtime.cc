#include "agent/chains/script_runtime.h"

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it

#include "common/strings.h"
#include "plugins/lua/lua_plugin.h"
#include "plugins/lua/lua_state.h"

namespace meshplug::agent::chains {

absl::StatusOr<std::shared_ptr<plugins::lua::LuaPlugin>> LuaScriptRuntime::Get(const v1::PluginScript& script) const {
  std::lock_guard lock(mu_);
  // Forget versions no chain set holds any more.
  std::erase_if(plugins_, [](const auto& kv) { return kv.second.expired(); });
  auto key = std::make_pair(script.name(), script.source());
  auto& slot = plugins_[key];
  if (auto existing = slot.lock()) return existing;
  plugins::lua::LuaPluginOptions options;
  options.limits = limits_;
  auto& stats = stats_[script.plugin()];
  if (!stats) stats = std::make_shared<plugins::lua::PluginStats>();
  options.stats = stats;
  auto created =
      plugins::lua::LuaPlugin::Create(script.plugin(), script.version(), script.source(), std::move(options));
  if (!created.ok()) {
    plugins_.erase(key);
    return absl::Status(created.status().code(),
                        Cat("version ", script.version(), ": ", std::string(created.status().message())));
  }
  slot = *created;
  return *created;
}

absl::StatusOr<std::shared_ptr<plugins::HttpPlugin>> LuaScriptRuntime::MakeHttp(const v1::PluginScript& script,
                                                                                bool) const {
  auto p = Get(script);
  if (!p.ok()) return p.status();
  return std::shared_ptr<plugins::HttpPlugin>(*p);
}

absl::StatusOr<std::shared_ptr<plugins::TcpPlugin>> LuaScriptRuntime::MakeTcp(const v1::PluginScript& script,
                                                                              bool) const {
  auto p = Get(script);
  if (!p.ok()) return p.status();
  return std::shared_ptr<plugins::TcpPlugin>(*p);
}

void LuaScriptRuntime::ExportStats(Stats& stats) const {
  stats.SetGauge("meshplug_lua_memory_bytes", {}, static_cast<int64_t>(plugins::lua::LuaState::ProcessMemoryUsed()));
  std::lock_guard lock(mu_);
  for (const auto& [plugin, counters] : stats_) {
    const uint64_t errors = counters->errors();
    uint64_t& exported = exported_errors_[plugin];
    if (errors > exported) {
      stats.Count("meshplug_plugin_errors_total", {{"plugin", plugin}}, errors - exported);
      exported = errors;
    }
    for (const auto& [name, value] : counters->counters()) {
      stats.SetGauge("meshplug_plugin_tally", {{"plugin", plugin}, {"name", name}}, value);
    }
  }
}

std::unique_ptr<ScriptFactory> MakeScriptRuntime(plugins::lua::LuaLimits limits, size_t total_memory_bytes) {
  plugins::lua::LuaState::SetProcessMemoryLimit(total_memory_bytes);
  return std::make_unique<LuaScriptRuntime>(limits);
}

}  // namespace meshplug::agent::chains
