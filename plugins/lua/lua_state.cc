#include "plugins/lua/lua_state.h"

#include <cstdlib>
#include <cstring>

namespace meshplug::plugins::lua {

using Clock = std::chrono::steady_clock;

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
    return nullptr;
  }
  // Refusing makes Lua collect garbage and retry once; LUA_ERRMEM follows a second no.
  if (new_size > current && self.running_ != nullptr &&
      self.used_ - current + new_size > self.limit_) {
    return nullptr;
  }
  void* resized = std::realloc(block, new_size);
  if (resized != nullptr) self.used_ = self.used_ - current + new_size;
  return resized;
}

void LuaState::CountHook(lua_State* L, lua_Debug*) {
  LuaState& self = Of(L);
  Budget* budget = self.running_;
  if (budget == nullptr) return;
  budget->instructions_left -= kHookInterval;
  if (budget->breach.empty()) {
    if (budget->instructions_left <= 0) {
      budget->breach = "instruction limit of " + std::to_string(budget->instruction_limit) +
                       " exceeded";
    } else if (Clock::now() - self.resumed_at_ > budget->time_left) {
      budget->breach = "time limit of " +
                       std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          budget->time_limit)
                                          .count()) +
                       " ms exceeded";
    }
  }
  if (budget->breach.empty()) return;
  luaL_where(L, 0);  // inside a hook, level 0 is the Lua function that was interrupted
  lua_pushstring(L, budget->breach.c_str());
  lua_concat(L, 2);
  lua_error(L);
}

int LuaState::Panic(lua_State* L) {
  Of(L).panicked_ = true;
  const char* message = lua_tostring(L, -1);
  throw LuaPanic(std::string("Lua panic: ") + (message != nullptr ? message : "unknown error"));
}

void LuaState::NoteMemoryBreach(Budget& budget) const {
  if (budget.breach.empty()) {
    budget.breach = "memory limit of " + std::to_string(limit_) + " bytes exceeded";
  }
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
  resumed_at_ = Clock::now();
  const int status = lua_resume(co, nullptr, nargs, nresults);
  budget.time_left -= Clock::now() - resumed_at_;
  if (status == LUA_ERRMEM) NoteMemoryBreach(budget);
  running_ = nullptr;
  return status;
}

}  // namespace meshplug::plugins::lua
