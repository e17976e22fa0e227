#include "plugins/lua/lua_state.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

namespace meshplug::plugins::lua {

using Clock = std::chrono::steady_clock;

namespace {

std::atomic<size_t> g_process_used{0};
std::atomic<size_t> g_process_limit{0};

}  // namespace

void LuaState::SetProcessMemoryLimit(size_t bytes) { g_process_limit = bytes; }
size_t LuaState::ProcessMemoryUsed() { return g_process_used.load(); }

std::unique_ptr<LuaState> LuaState::Create(size_t memory_limit) {
  std::unique_ptr<LuaState> self(new LuaState(memory_limit));
  self->state_ = lua_newstate(&LuaState::Allocate, self.get());
  if (self->state_ == nullptr) return nullptr;
  lua_atpanic(self->state_, &LuaState::Panic);
  // New threads copy the main thread's extra space, which Lua leaves uninitialised.
  std::memset(lua_getextraspace(self->state_), 0, LUA_EXTRASPACE);
  // Threads inherit the hook from the thread that creates them, so one call here covers
  // every request coroutine and every coroutine a script creates.
  lua_sethook(self->state_, &LuaState::CountHook, LUA_MASKCOUNT, kHookInterval);
  // Most garbage lives for one call; generational mode collects it cheaper
  // (bench/plugins: ~15% less per request than incremental).
  lua_gc(self->state_, LUA_GCGEN, 0, 0);
  return self;
}

LuaState::~LuaState() {
  // After a panic closing could crash on inconsistent state; leaking is the lesser harm.
  if (state_ != nullptr && !panicked_) lua_close(state_);
}

LuaState& LuaState::Of(lua_State* L) {
  void* self = nullptr;
  lua_getallocf(L, &self);
  return *static_cast<LuaState*>(self);
}

Budget* LuaState::Running(lua_State* L) { return Of(L).running_; }

void* LuaState::Allocate(void* opaque, void* block, size_t old_size, size_t new_size) {
  auto& self = *static_cast<LuaState*>(opaque);
  // For a new block Lua passes the object type in old_size, not a size.
  const size_t current = block != nullptr ? old_size : 0;
  if (new_size == 0) {
    std::free(block);
    self.used_ -= current;
    g_process_used -= current;
    return nullptr;
  }
  // Refusing makes Lua collect garbage and retry once; LUA_ERRMEM follows a second no.
  if (new_size > current && self.running_ != nullptr) {
    if (self.used_ - current + new_size > self.limit_) return nullptr;
    const size_t process_limit = g_process_limit.load(std::memory_order_relaxed);
    if (process_limit != 0 && g_process_used.load(std::memory_order_relaxed) + (new_size - current) > process_limit) {
      self.process_cap_hit_ = true;
      return nullptr;
    }
  }
  void* resized = std::realloc(block, new_size);
  if (resized != nullptr) {
    self.used_ = self.used_ - current + new_size;
    g_process_used += new_size;
    g_process_used -= current;
  }
  return resized;
}

void LuaState::CheckLimits(Budget& budget) const {
  if (!budget.breach.empty()) return;
  if (budget.instructions_left <= 0) {
    budget.breach = "instruction limit of " + std::to_string(budget.instruction_limit) + " exceeded";
  } else if (Clock::now() - resumed_at_ > budget.time_left) {
    budget.breach =
        "time limit of " +
        std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(budget.time_limit).count()) +
        " ms exceeded";
  }
}

void LuaState::RaiseBreach(lua_State* L, const Budget& budget) {
  luaL_where(L, 1);  // the Lua function running (in a hook, level 0 is too: see CountHook)
  lua_pushstring(L, budget.breach.c_str());
  lua_concat(L, 2);
  lua_error(L);
  __builtin_unreachable();
}

void LuaState::CountHook(lua_State* L, lua_Debug*) {
  LuaState& self = Of(L);
  Budget* budget = self.running_;
  if (budget == nullptr) return;
  budget->instructions_left -= kHookInterval;
  self.CheckLimits(*budget);
  if (budget->breach.empty()) return;
  luaL_where(L, 0);  // inside a hook, level 0 is the Lua function that was interrupted
  lua_pushstring(L, budget->breach.c_str());
  lua_concat(L, 2);
  lua_error(L);
}

void LuaState::Charge(lua_State* L, uint64_t instructions) {
  LuaState& self = Of(L);
  Budget* budget = self.running_;
  if (budget == nullptr) return;
  budget->instructions_left -= static_cast<int64_t>(std::min<uint64_t>(instructions, INT64_MAX / 2));
  self.CheckLimits(*budget);
  if (!budget->breach.empty()) RaiseBreach(L, *budget);
}

int LuaState::Panic(lua_State* L) {
  Of(L).panicked_ = true;
  const char* message = lua_tostring(L, -1);
  throw LuaPanic(std::string("Lua panic: ") + (message != nullptr ? message : "unknown error"));
}

void LuaState::NoteMemoryBreach(Budget& budget) const {
  if (!budget.breach.empty()) return;
  budget.breach = process_cap_hit_
                      ? "memory limit of all Lua plugins (" + std::to_string(g_process_limit.load()) + " bytes) exceeded"
                      : "memory limit of " + std::to_string(limit_) + " bytes exceeded";
}

bool LuaState::Breached(lua_State* L, int status) {
  LuaState& self = Of(L);
  Budget* budget = self.running_;
  if (budget == nullptr) return false;
  if (status == LUA_ERRMEM) self.NoteMemoryBreach(*budget);
  return !budget->breach.empty();
}

int LuaState::Resume(lua_State* co, Budget& budget, int nargs, int* nresults) {
  running_ = &budget;
  process_cap_hit_ = false;
  resumed_at_ = Clock::now();
  const int status = lua_resume(co, nullptr, nargs, nresults);
  budget.time_left -= Clock::now() - resumed_at_;
  if (status == LUA_ERRMEM) NoteMemoryBreach(budget);
  running_ = nullptr;
  return status;
}

}  // namespace meshplug::plugins::lua
