// Differential: the sandbox's bounded string.find/match/gmatch/gsub against stock Lua's, on
// fuzzed subjects and patterns. Any difference in results or error messages is a finding.
//
// Input: op (1 byte), init (1 byte, signed), pattern length (1 byte), pattern, subject.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz/finding.h"
#include "plugins/lua/bounded_library.h"
#include "plugins/lua/lua_state.h"

namespace {

using meshplug::plugins::lua::Budget;
using meshplug::plugins::lua::LuaState;

constexpr char kScript[] = R"lua(
local op, s, p, init = ...
local out = {}
local function rec(...)
  local t = table.pack(...)
  for i = 1, t.n do t[i] = tostring(t[i]) end
  out[#out + 1] = table.concat(t, ",")
end
if op == 0 then rec(pcall(string.find, s, p, init))
elseif op == 1 then rec(pcall(string.match, s, p, init))
elseif op == 2 then
  local ok, it = pcall(string.gmatch, s, p, init)
  if ok then
    rec(pcall(function()
      local n = 0
      for a, b, c in it do
        rec(a, b, c)
        n = n + 1
        if n > 50 then break end
      end
      return n
    end))
  else
    rec(ok, it)
  end
elseif op == 3 then rec(pcall(string.gsub, s, p, "<%0%1>", init))
elseif op == 4 then rec(pcall(string.gsub, s, p, function(a, b) return a and (a .. tostring(b)):upper() end))
elseif op == 5 then rec(pcall(string.gsub, s, p, {a = "A", b = false}))
else rec(pcall(string.find, s, p, init, true)) end
return table.concat(out, "\n")
)lua";

struct Case {
  int op;
  int init;
  std::string_view pattern;
  std::string_view subject;
};

void PushArgs(lua_State* L, const Case& c) {
  lua_pushinteger(L, c.op);
  lua_pushlstring(L, c.subject.data(), c.subject.size());
  lua_pushlstring(L, c.pattern.data(), c.pattern.size());
  lua_pushinteger(L, c.init);
}

std::string Result(lua_State* L, int status) {
  size_t size = 0;
  const char* text = lua_tolstring(L, -1, &size);
  std::string out = text ? std::string(text, size) : "(no text)";
  return status == LUA_OK ? out : "error: " + out;
}

// In a sandbox-like state with the bounded functions, under a budget; nullopt when the
// budget ran out (stock Lua would then take as long, or forever).
std::optional<std::string> Bounded(const Case& c) {
  std::unique_ptr<LuaState> state = LuaState::Create(64 << 20);
  lua_State* L = state->get();
  luaL_openlibs(L);
  lua_getglobal(L, "string");
  lua_getglobal(L, "table");
  lua_getglobal(L, "utf8");
  meshplug::plugins::lua::BoundLongRunningFunctions(L, -3, -2, -1);
  lua_pop(L, 3);
  lua_State* co = lua_newthread(L);
  if (luaL_loadbufferx(co, kScript, sizeof kScript - 1, "=fuzz", "t") != LUA_OK) std::abort();
  PushArgs(co, c);
  Budget budget(2'000'000, std::chrono::seconds(2));
  int results = 0;
  const int status = state->Resume(co, budget, 4, &results);
  if (!budget.breach.empty()) return std::nullopt;
  return Result(co, status);
}

std::string Stock(const Case& c) {
  std::unique_ptr<lua_State, decltype(&lua_close)> state(luaL_newstate(), &lua_close);
  lua_State* L = state.get();
  luaL_openlibs(L);
  if (luaL_loadbufferx(L, kScript, sizeof kScript - 1, "=fuzz", "t") != LUA_OK) std::abort();
  PushArgs(L, c);
  return Result(L, lua_pcall(L, 4, 1, 0));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const size_t pattern_size = std::min<size_t>(static_cast<uint8_t>(bytes[2]), size - 3);
  Case c{static_cast<uint8_t>(bytes[0]) % 7, static_cast<int8_t>(bytes[1]), bytes.substr(3, pattern_size),
         bytes.substr(3 + pattern_size)};
  if (c.subject.size() > 256) return 0;  // stock Lua's gsub and backtracking stay fast
  const std::optional<std::string> bounded = Bounded(c);
  if (!bounded) return 0;
  const std::string stock = Stock(c);
  if (*bounded != stock) {
    meshplug::fuzz::Finding("lua_patterns", "bounded and stock Lua differ", "  bounded: " + *bounded + "\n  stock:   " + stock);
  }
  return 0;
}
