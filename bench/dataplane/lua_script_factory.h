// A ScriptFactory over the Lua runtime (plugins/lua), for the benchmark agents: the
// //agent binary does not wire a Lua runtime in yet, so the plugin benchmarks run an agent
// built from the same agent library plus this factory.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "agent/plugin_factory.h"
#include "plugins/lua/lua_plugin.h"

namespace meshplug::bench {

// One LuaPlugin per script resource ("<plugin>@<hash>"), shared by every chain set and
// both directions that mount it, as plugins/lua/lua_plugin.h asks.
class LuaScriptFactory : public agent::ScriptFactory {
 public:
  absl::StatusOr<std::shared_ptr<plugins::HttpPlugin>> MakeHttp(const v1::PluginScript& script,
                                                                bool) const override {
    auto p = Get(script);
    if (!p.ok()) return p.status();
    return std::shared_ptr<plugins::HttpPlugin>(*p);
  }
  absl::StatusOr<std::shared_ptr<plugins::TcpPlugin>> MakeTcp(const v1::PluginScript& script,
                                                              bool) const override {
    auto p = Get(script);
    if (!p.ok()) return p.status();
    return std::shared_ptr<plugins::TcpPlugin>(*p);
  }

 private:
  absl::StatusOr<std::shared_ptr<plugins::lua::LuaPlugin>> Get(const v1::PluginScript& script) const {
    std::lock_guard lock(mu_);
    auto& slot = plugins_[script.name()];
    if (auto existing = slot.lock()) return existing;
    auto created = plugins::lua::LuaPlugin::Create(script.plugin(), script.version(), script.source());
    if (!created.ok()) return created.status();
    slot = *created;
    return *created;
  }

  mutable std::mutex mu_;
  mutable std::map<std::string, std::weak_ptr<plugins::lua::LuaPlugin>> plugins_;
};

}  // namespace meshplug::bench
