#include "plugins/lua/lua_state.h"

#include <gtest/gtest.h>

#include <cstring>

namespace meshplug::plugins::lua {
namespace {

// Pushes a new thread holding `code` compiled, ready to resume.
void LoadAndThread(lua_State* L, const char* code) {
  EXPECT_EQ(luaL_loadbufferx(L, code, std::strlen(code), "=test", "t"), LUA_OK);
  lua_State* co = lua_newthread(L);
  lua_insert(L, -2);
  lua_xmove(L, co, 1);
}

TEST(LuaState, PanicThrowsInsteadOfAborting) {
  auto state = LuaState::Create(1 << 20);
  ASSERT_TRUE(state);
  lua_pushliteral(state->get(), "unprotected");
  EXPECT_THROW(lua_error(state->get()), LuaPanic);
  EXPECT_TRUE(state->panicked());
}

TEST(LuaState, MemoryCapAppliesWhileRunningOnly) {
  auto state = LuaState::Create(256 << 10);
  ASSERT_TRUE(state);
  lua_State* L = state->get();
  // Host allocations between resumes are exempt: they must never raise.
  lua_createtable(L, 64 << 10, 0);
  EXPECT_GT(state->memory_used(), state->memory_limit());
  lua_pop(L, 1);
  lua_gc(L, LUA_GCCOLLECT);
  EXPECT_LT(state->memory_used(), state->memory_limit());

  LoadAndThread(L, "local t = {} for i = 1, 1e9 do t[i] = i end");
  lua_State* co = lua_tothread(L, -1);
  Budget budget(1'000'000'000, std::chrono::seconds(10));
  int nresults = 0;
  EXPECT_EQ(state->Resume(co, budget, 0, &nresults), LUA_ERRMEM);
  EXPECT_EQ(budget.breach, "memory limit of 262144 bytes exceeded");
}

TEST(LuaState, InstructionBudgetStopsLoop) {
  auto state = LuaState::Create(1 << 20);
  ASSERT_TRUE(state);
  LoadAndThread(state->get(), "while true do end");
  lua_State* co = lua_tothread(state->get(), -1);
  Budget budget(50'000, std::chrono::seconds(10));
  int nresults = 0;
  EXPECT_EQ(state->Resume(co, budget, 0, &nresults), LUA_ERRRUN);
  EXPECT_EQ(budget.breach, "instruction limit of 50000 exceeded");
  EXPECT_STREQ(lua_tostring(co, -1), "test:1: instruction limit of 50000 exceeded");
  EXPECT_LE(budget.instructions_left, 0);
}

TEST(LuaState, TimeBudgetCountsOnlyRunningTime) {
  auto state = LuaState::Create(1 << 20);
  ASSERT_TRUE(state);
  LoadAndThread(state->get(), "for i = 1, 10 do coroutine.yield() end");
  luaL_requiref(state->get(), LUA_COLIBNAME, luaopen_coroutine, 1);
  lua_pop(state->get(), 1);
  lua_State* co = lua_tothread(state->get(), -1);
  Budget budget(1'000'000, std::chrono::seconds(1));
  int nresults = 0;
  for (int i = 0; i < 10; ++i) ASSERT_EQ(state->Resume(co, budget, 0, &nresults), LUA_YIELD);
  EXPECT_EQ(state->Resume(co, budget, 0, &nresults), LUA_OK);
  EXPECT_TRUE(budget.breach.empty());
  EXPECT_LT(budget.time_left, std::chrono::seconds(1));
  EXPECT_GT(budget.time_left, std::chrono::milliseconds(900));
  EXPECT_EQ(LuaState::Running(state->get()), nullptr);
}

}  // namespace
}  // namespace meshplug::plugins::lua
