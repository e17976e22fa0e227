// The bounded string functions mean what Lua's own mean: the same script runs in a stock
// Lua state and in one with the bounded library, and prints the same results and errors.
#include "plugins/lua/bounded_library.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "plugins/lua/lua_state.h"

namespace meshplug::plugins::lua {
namespace {

constexpr char kScript[] = R"lua(
local out = {}
local function rec(...)
  local t = table.pack(...)
  for i = 1, t.n do t[i] = tostring(t[i]) end
  out[#out + 1] = table.concat(t, ",")
end
local subjects = {
  "", "hello world", "aaa", "a.b.c", "key = value; k2=v2", "(foo(bar))baz", "THE (quick) fox",
  "  trim  ", "x\0y\0", "12ab34", "x=1, y=22, z=333", "[]]]", "%%a", "ab-ba", "tab\there"
}
local patterns = {
  "", "a", ".", "%a+", "%d+", "^h", "o$", "l+", "l*", "l-", "l?", "(h)(e)", "()ll()", "%b()",
  "%f[%w]%w+", "%f[%W]", "[aeiou]", "[^aeiou]+", "[a-c]", "[%a_][%w_]*", "[]]", "[^]]", "(%w+)=(%w+)",
  "%s*(.-)%s*$", "(a*(.)%w(%s*))", "%", "[a", "(()", "%1", "(a)%1", "%g+", "[%]]", "%x%x", "(", ")",
  "a)", "%f", "%fx", "[a-]", "[-a]", ".-b", "x*y", "%u%l*", "%P+", "^(.-)%s", "(.)%1", "a-b", ".?.?",
  "^$", "$", "^", "[%w%.]+", "%.%a", "[%d-]+", "%z", "\0", "[%z]", "b%-b", "%b", "%ba", "(%d)(%d)%2",
  "%0", "[^%s]+", "(%a+)%s*(%b())", "^%s*$", "%c", "%p+", "[A-Z]+", "..-..", "%$", "a+$", "%w-%d",
}
for _, s in ipairs(subjects) do
  for _, p in ipairs(patterns) do
    for _, init in ipairs({1, 2, -3, 0, 100}) do
      rec("find", s, p, init, pcall(string.find, s, p, init))
      rec("match", s, p, init, pcall(string.match, s, p, init))
    end
    rec("plain", s, p, pcall(string.find, s, p, 1, true))
    local ok, it = pcall(string.gmatch, s, p)
    if ok then
      rec("gmatch", s, p, pcall(function()
        local n = 0
        for a, b in it do
          rec(a, b)
          n = n + 1
          if n > 50 then break end
        end
        return n
      end))
    end
    rec("gsub", s, p, pcall(string.gsub, s, p, "<%0>"))
    rec("gsub1", s, p, pcall(string.gsub, s, p, "[%1]", 2))
    rec("gsubf", s, p, pcall(string.gsub, s, p, function(a, b) return a and (a .. "|" .. tostring(b)):upper() end))
    rec("gsubt", s, p, pcall(string.gsub, s, p, {a = "A", l = false, ["1"] = 1}))
    rec("gsubbad", s, p, pcall(string.gsub, s, p, "%x"))
    rec("gsubend", s, p, pcall(string.gsub, s, p, "%"))
  end
end
rec(pcall(string.gsub, "abc", "%w", function() return {} end))
rec(string.rep("ab", 3, ","), string.rep("", 5), string.rep("x", 0), string.rep("x", -1))
rec(table.concat({1, 2, 3}, "-", 2), table.concat({}), pcall(table.concat, {1, {}, 3}))
local t = {1, 2, 3}
table.insert(t, 4); table.insert(t, 1, 0); rec(table.concat(t, " "), table.remove(t), table.remove(t, 1))
rec(table.concat(table.move({1, 2, 3}, 1, 3, 2), " "), table.unpack({1, 2, 3}, 2))
local u = {3, 1, 2}; table.sort(u); rec(table.concat(u, ""))
rec(utf8.len("héllo"), utf8.codepoint("héllo", 1, -1), utf8.offset("héllo", 3))
rec(("Hello"):upper(), ("Hello"):lower(), ("Hello"):reverse(), ("Hello"):byte(1, -1))
return table.concat(out, "\n")
)lua";

std::string RunScript(lua_State* L) {
  if (luaL_loadbufferx(L, kScript, sizeof kScript - 1, "=differential", "t") != LUA_OK) return lua_tostring(L, -1);
  if (lua_pcall(L, 0, 1, 0) != LUA_OK) return std::string("error: ") + lua_tostring(L, -1);
  size_t size = 0;
  const char* text = lua_tolstring(L, -1, &size);
  return std::string(text, size);
}

TEST(BoundedLibraryTest, MeansWhatLuasOwnLibraryMeans) {
  std::unique_ptr<lua_State, decltype(&lua_close)> stock(luaL_newstate(), &lua_close);
  luaL_openlibs(stock.get());
  const std::string expected = RunScript(stock.get());

  std::unique_ptr<LuaState> state = LuaState::Create(1 << 30);
  ASSERT_NE(state, nullptr);
  lua_State* L = state->get();
  luaL_openlibs(L);
  lua_getglobal(L, "string");
  lua_getglobal(L, "table");
  lua_getglobal(L, "utf8");
  BoundLongRunningFunctions(L, -3, -2, -1);
  lua_pop(L, 3);
  const std::string actual = RunScript(L);

  ASSERT_GT(expected.size(), 100000u) << expected;
  if (actual != expected) {
    // The first line that differs, rather than two huge strings.
    size_t line = 0, at = 0;
    while (at < actual.size() && at < expected.size() && actual[at] == expected[at]) {
      if (actual[at] == '\n') ++line;
      ++at;
    }
    const size_t from = expected.rfind('\n', at) == std::string::npos ? 0 : expected.rfind('\n', at) + 1;
    FAIL() << "line " << line << " differs:\n  stock:   " << expected.substr(from, expected.find('\n', at) - from)
           << "\n  bounded: " << actual.substr(from, actual.find('\n', at) - from);
  }
}

}  // namespace
}  // namespace meshplug::plugins::lua
