#include "plugins/lua/syntax_check.h"

#include <lua.hpp>

#include <memory>

namespace meshplug::plugins::lua {

std::optional<std::string> CheckSyntax(std::string_view script, std::string_view chunk_name) {
  std::unique_ptr<lua_State, decltype(&lua_close)> L(luaL_newstate(), &lua_close);
  if (!L) return "cannot create a Lua state";
  const std::string name = "=" + std::string(chunk_name);
  // Mode "t": text only, so a precompiled (bytecode) chunk is refused too.
  if (luaL_loadbufferx(L.get(), script.data(), script.size(), name.c_str(), "t") != LUA_OK) {
    return std::string(lua_tostring(L.get(), -1));
  }
  return std::nullopt;
}

}  // namespace meshplug::plugins::lua
