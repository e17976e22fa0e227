#include "plugins/lua/script_check.h"

#include <lua.hpp>

#include <memory>

#include "plugins/lua/lua_plugin.h"

namespace meshplug::plugins::lua {

std::optional<std::string> CheckScript(std::string_view script, std::string_view plugin) {
  {
    std::unique_ptr<lua_State, decltype(&lua_close)> L(luaL_newstate(), &lua_close);
    if (!L) return "cannot create a Lua state";
    const std::string name = "=" + std::string(plugin);
    // Mode "t": text only, so a precompiled (bytecode) chunk is refused too.
    if (luaL_loadbufferx(L.get(), script.data(), script.size(), name.c_str(), "t") != LUA_OK) {
      return "Lua syntax error: " + std::string(lua_tostring(L.get(), -1));
    }
  }
  LuaPluginOptions options;
  options.log = [](LogLevel, std::string_view, std::string_view) {};  // a check, not a run
  auto loaded = LuaPlugin::Create(std::string(plugin), "check", std::string(script), std::move(options));
  if (!loaded.ok()) return "does not load: " + std::string(loaded.status().message());
  return std::nullopt;
}

}  // namespace meshplug::plugins::lua
