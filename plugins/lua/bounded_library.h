// Standard library functions that could run long inside C, where the instruction count
// hook never fires, replaced by bounded ones for the sandbox:
//
//   string.find, match, gmatch, gsub  Lua's pattern semantics (manual §6.4.1) on a matcher
//                                     that charges every step to the call's budget
//                                     (".-.-.-x" over 1 KB backtracks for minutes in Lua's)
//   string.rep                        charged by the bytes it makes; an empty piece
//                                     returns "" at once (Lua's loops n times)
//   table.concat, insert, remove,
//   move, sort, unpack                charged by the elements they touch
//   utf8.len, codepoint, offset,
//   codes                             charged by the bytes they scan
//
// A breach raised from here is sticky like the count hook's, so pcall cannot swallow it.
#pragma once

#include <lua.hpp>

namespace meshplug::plugins::lua {

// Replaces the functions above in the string, table and utf8 library tables at the given
// stack indices.
void BoundLongRunningFunctions(lua_State* L, int string_lib, int table_lib, int utf8_lib);

}  // namespace meshplug::plugins::lua
