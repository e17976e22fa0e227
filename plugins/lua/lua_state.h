// A lua_State with hard limits: a memory cap (custom allocator), an instruction and time
// budget per resume (count hook), and a panic handler that throws instead of aborting.
#pragma once

#include <lua.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

namespace meshplug::plugins::lua {

// The limits of one call into a script. A breach is sticky: once set, every count hook
// raises it again and the sandbox's pcall/xpcall/coroutine.resume re-raise it, so a
// script cannot catch its way past a limit.
struct Budget {
  Budget(uint64_t instruction_limit, std::chrono::nanoseconds time_limit)
      : instructions_left(instruction_limit), time_left(time_limit),
        instruction_limit(instruction_limit), time_limit(time_limit) {}

  int64_t instructions_left;
  std::chrono::nanoseconds time_left;  // Lua running time; time between resumes is free
  const uint64_t instruction_limit;
  const std::chrono::nanoseconds time_limit;
  std::string breach;  // what was exceeded, empty while within limits
};

// Thrown by the panic handler: Lua met an error outside protected mode (only a failing
// malloc can cause one here). The state must not be used again.
struct LuaPanic : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class LuaState {
 public:
  // The memory cap applies while a budget runs; host code between resumes is exempt so
  // that building arguments never raises. nullptr when Lua cannot allocate a state.
  static std::unique_ptr<LuaState> Create(size_t memory_limit);
  ~LuaState();
  LuaState(const LuaState&) = delete;
  LuaState& operator=(const LuaState&) = delete;

  lua_State* get() const { return state_; }
  size_t memory_used() const { return used_; }
  size_t memory_limit() const { return limit_; }
  // True once the panic handler ran: the state must not be used again.
  bool panicked() const { return panicked_; }

  // lua_resume(co, nargs) under `budget`; returns Lua's status. Sets budget.breach when
  // a limit was hit, including memory (LUA_ERRMEM).
  int Resume(lua_State* co, Budget& budget, int nargs, int* nresults);

  // The budget of the resume now running in L's state, or nullptr between resumes.
  static Budget* Running(lua_State* L);
  // For code that catches errors (pcall and friends): records a memory error of `status`
  // as a breach and tells whether the running budget is breached.
  static bool Breached(lua_State* L, int status);

  // Charges work done in C (library functions the count hook cannot see) to the running
  // budget as `instructions`, and raises like the hook when a limit is breached. Nothing
  // happens between resumes.
  static void Charge(lua_State* L, uint64_t instructions);

  // One cap on the memory of every Lua state of the process together, in addition to
  // each state's own (0: none). Like the per-state cap it applies while a budget runs.
  static void SetProcessMemoryLimit(size_t bytes);
  static size_t ProcessMemoryUsed();

  // Instructions between two checks of the budget.
  static constexpr int kHookInterval = 1000;

 private:
  explicit LuaState(size_t memory_limit) : limit_(memory_limit) {}
  static LuaState& Of(lua_State* L);
  static void* Allocate(void* self, void* block, size_t old_size, size_t new_size);
  static void CountHook(lua_State* L, lua_Debug*);
  // Records a breach of the instruction or time limit, if there is one.
  void CheckLimits(Budget& budget) const;
  // Raises the budget's breach from `L` at the running function's position.
  [[noreturn]] static void RaiseBreach(lua_State* L, const Budget& budget);
  static int Panic(lua_State* L);
  void NoteMemoryBreach(Budget& budget) const;

  lua_State* state_ = nullptr;
  const size_t limit_;
  size_t used_ = 0;
  Budget* running_ = nullptr;
  bool panicked_ = false;
  bool process_cap_hit_ = false;  // the last refused allocation was the process-wide cap
  std::chrono::steady_clock::time_point resumed_at_;
};

}  // namespace meshplug::plugins::lua
