// The allowlisted environment a plugin script runs in.
#pragma once

#include <lua.hpp>

namespace meshplug::plugins::lua {

// Opens the safe part of the standard library in L (a fresh state made by LuaState) and
// pushes a new environment table holding only:
//   assert error ipairs next pairs select tonumber tostring type getmetatable setmetatable
//   pcall xpcall _VERSION _G, and the string (without dump), table, math, utf8 and
//   coroutine libraries.
// Not reachable: io, os, package, require, load, loadstring, loadfile, dofile, debug,
// string.dump (also not through the string metatable), collectgarbage, rawget, rawset,
// rawequal, rawlen. Metatables of strings and host objects are hidden; setmetatable
// refuses __gc (finalizers would run outside any budget); pcall, xpcall and
// coroutine.resume re-raise limit breaches; coroutine.resume/wrap/close refuse the
// runtime's own request coroutines.
void PushSandbox(lua_State* L);

// The extra space of a coroutine the runtime created to run a phase function holds its
// call; coroutines that scripts create inherit the main thread's, which is null.
inline void* HostCallOf(lua_State* thread) { return *static_cast<void**>(lua_getextraspace(thread)); }
inline void SetHostCall(lua_State* thread, void* call) {
  *static_cast<void**>(lua_getextraspace(thread)) = call;
}
// After its call ended a runtime coroutine keeps a non-null marker, so that scripts still
// cannot resume it, and no pointer to the finished call.
void RetireHostCoroutine(lua_State* thread);

}  // namespace meshplug::plugins::lua
