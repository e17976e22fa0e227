#include "plugins/lua/sandbox.h"

#include <initializer_list>

#include "plugins/lua/bounded_library.h"
#include "plugins/lua/lua_state.h"

namespace meshplug::plugins::lua {
namespace {

// pcall/xpcall/coroutine.resume finish here: a breached budget is re-raised instead of
// being returned to the script as `false, message`.
// The error object, when there is one, is on top of L's stack.
void RaiseIfBreached(lua_State* L, int status) {
  if (!LuaState::Breached(L, status)) return;
  if (status != LUA_OK && status != LUA_YIELD) lua_error(L);  // keeps the hook's position
  luaL_error(L, "%s", LuaState::Running(L)->breach.c_str());
}

// Like lbaselib's finishpcall, plus the breach check.
int FinishPcall(lua_State* L, int status, lua_KContext extra) {
  RaiseIfBreached(L, status);
  if (status != LUA_OK && status != LUA_YIELD) {
    lua_pushboolean(L, 0);
    lua_pushvalue(L, -2);
    return 2;  // false, error object
  }
  return lua_gettop(L) - static_cast<int>(extra);  // true and the results
}

int SafePcall(lua_State* L) {
  luaL_checkany(L, 1);
  lua_pushboolean(L, 1);
  lua_insert(L, 1);
  const int status = lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 0, 0, FinishPcall);
  return FinishPcall(L, status, 0);
}

int SafeXpcall(lua_State* L) {
  const int n = lua_gettop(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_pushboolean(L, 1);
  lua_pushvalue(L, 1);
  lua_rotate(L, 3, 2);  // f, msgh, true, f, args...
  const int status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, FinishPcall);
  return FinishPcall(L, status, 2);
}

int SafeSetmetatable(lua_State* L) {
  if (lua_type(L, 2) == LUA_TTABLE) {
    lua_pushliteral(L, "__gc");
    if (lua_rawget(L, 2) != LUA_TNIL) {
      return luaL_error(L, "setmetatable: __gc metamethods are not allowed in plugins");
    }
    lua_pop(L, 1);
  }
  // The stock function (first upvalue) enforces __metatable protection.
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

lua_State* ScriptCoroutine(lua_State* L, int arg) {
  lua_State* co = lua_tothread(L, arg);
  luaL_argexpected(L, co != nullptr, arg, "coroutine");
  if (HostCallOf(co) != nullptr) {
    luaL_error(L, "a phase function's own coroutine cannot be resumed or closed by the script");
  }
  return co;
}

// coroutine.resume as in lcorolib (lua_resume reports dead and running coroutines), plus
// the request-coroutine guard and the breach check.
int SafeResume(lua_State* L) {
  lua_State* co = ScriptCoroutine(L, 1);
  const int nargs = lua_gettop(L) - 1;
  if (!lua_checkstack(co, nargs)) {
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "too many arguments to resume");
    return 2;
  }
  lua_xmove(L, co, nargs);
  int nresults = 0;
  const int status = lua_resume(co, L, nargs, &nresults);
  if (status != LUA_OK && status != LUA_YIELD) lua_xmove(co, L, 1);  // error object
  RaiseIfBreached(L, status);
  if (status == LUA_OK || status == LUA_YIELD) {
    if (!lua_checkstack(L, nresults + 1)) {
      lua_pop(co, nresults);
      lua_pushboolean(L, 0);
      lua_pushliteral(L, "too many results to resume");
      return 2;
    }
    lua_pushboolean(L, 1);
    lua_xmove(co, L, nresults);
    return nresults + 1;
  }
  lua_pushboolean(L, 0);
  lua_insert(L, -2);
  return 2;  // false, error object
}

// Runs the stock function in upvalue 1 after checking that argument 1 is a script coroutine.
int GuardedCoroutineCall(lua_State* L) {
  ScriptCoroutine(L, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

// coroutine.wrap on top of the safe resume; errors propagate like the stock one's.
constexpr char kWrap[] = R"lua(
local create, resume = ...
local function results(ok, ...)
  if not ok then error((...), 0) end
  return ...
end
return function(f)
  local co = create(f)
  return function(...) return results(resume(co, ...)) end
end
)lua";

void CopyFields(lua_State* L, int from, int to, std::initializer_list<const char*> names) {
  for (const char* name : names) {
    lua_getfield(L, from, name);
    lua_setfield(L, to, name);
  }
}

void OpenLibrary(lua_State* L, const char* name, lua_CFunction open) {
  luaL_requiref(L, name, open, /*glb=*/0);
}

void PushCoroutineLibrary(lua_State* L) {
  OpenLibrary(L, LUA_COLIBNAME, luaopen_coroutine);
  const int stock = lua_gettop(L);
  lua_newtable(L);
  const int safe = lua_gettop(L);
  CopyFields(L, stock, safe, {"create", "isyieldable", "running", "status", "yield"});
  lua_pushcfunction(L, SafeResume);
  lua_setfield(L, safe, "resume");
  lua_getfield(L, stock, "close");
  lua_pushcclosure(L, GuardedCoroutineCall, 1);
  lua_setfield(L, safe, "close");
  // Compiled from a text chunk, trusted: it only closes over create and the safe resume.
  luaL_loadbufferx(L, kWrap, sizeof(kWrap) - 1, "=coroutine.wrap", "t");
  lua_getfield(L, safe, "create");
  lua_getfield(L, safe, "resume");
  lua_call(L, 2, 1);
  lua_setfield(L, safe, "wrap");
  lua_remove(L, stock);
}

void PushStringLibrary(lua_State* L) {
  OpenLibrary(L, LUA_STRLIBNAME, luaopen_string);
  // Strings index this very table through their metatable, so dump goes from both.
  lua_pushnil(L);
  lua_setfield(L, -2, "dump");
  lua_pushliteral(L, "");
  lua_getmetatable(L, -1);
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");  // getmetatable("") returns false
  lua_pop(L, 2);
}

char retired_marker;

}  // namespace

void RetireHostCoroutine(lua_State* thread) { SetHostCall(thread, &retired_marker); }

void PushSandbox(lua_State* L) {
  OpenLibrary(L, "_G", luaopen_base);
  const int base = lua_gettop(L);
  lua_newtable(L);
  const int env = lua_gettop(L);
  CopyFields(L, base, env,
             {"assert", "error", "ipairs", "next", "pairs", "select", "tonumber", "tostring",
              "type", "getmetatable", "_VERSION"});
  lua_getfield(L, base, "setmetatable");
  lua_pushcclosure(L, SafeSetmetatable, 1);
  lua_setfield(L, env, "setmetatable");
  lua_pushcfunction(L, SafePcall);
  lua_setfield(L, env, "pcall");
  lua_pushcfunction(L, SafeXpcall);
  lua_setfield(L, env, "xpcall");
  lua_pushvalue(L, env);
  lua_setfield(L, env, "_G");

  PushStringLibrary(L);
  OpenLibrary(L, LUA_TABLIBNAME, luaopen_table);
  OpenLibrary(L, LUA_UTF8LIBNAME, luaopen_utf8);
  BoundLongRunningFunctions(L, -3, -2, -1);
  lua_setfield(L, env, LUA_UTF8LIBNAME);
  lua_setfield(L, env, LUA_TABLIBNAME);
  lua_setfield(L, env, LUA_STRLIBNAME);
  OpenLibrary(L, LUA_MATHLIBNAME, luaopen_math);
  lua_setfield(L, env, LUA_MATHLIBNAME);
  PushCoroutineLibrary(L);
  lua_setfield(L, env, LUA_COLIBNAME);

  lua_remove(L, base);
}

}  // namespace meshplug::plugins::lua
