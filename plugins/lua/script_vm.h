// One plugin version's script loaded in its own sandboxed Lua state, used by one worker
// thread, and one run of a phase function on its own coroutine.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it

#include <absl/status/statusor.h>

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "plugins/lua/host_api.h"
#include "plugins/lua/lua_state.h"

namespace meshplug::plugins::lua {

class ScriptVm {
 public:
  // Makes a state, installs the sandbox and the host API, and runs the script's top level
  // under the per-call limits. Errors name the plugin and say what failed: syntax, a
  // runtime error at load, a phase global that is not a function, a bad body flag.
  static absl::StatusOr<std::unique_ptr<ScriptVm>> Load(const PluginEnv& env,
                                                        std::string_view source);

  bool Has(Phase phase) const { return functions_[Index(phase)] != LUA_NOREF; }
  BodyMode request_body_mode() const { return request_body_; }
  BodyMode response_body_mode() const { return response_body_; }

  // After a panic the state may be inconsistent and must not be touched again.
  bool broken() const { return state_->panicked(); }

  // Coroutines that finished cleanly and wait for their next call.
  static constexpr size_t kMaxIdleCoroutines = 32;

 private:
  friend class PhaseRun;
  // A coroutine anchored in the registry.
  struct Coroutine {
    lua_State* thread;
    int ref;
  };
  static constexpr size_t Index(Phase phase) { return static_cast<size_t>(phase); }
  // Creating a thread is most of a call's fixed cost, so clean ones are reused.
  Coroutine AcquireCoroutine();
  void ReleaseCoroutine(Coroutine coroutine, bool reusable);
  explicit ScriptVm(std::unique_ptr<LuaState> state) : state_(std::move(state)) {}
  absl::Status ReadGlobals(int env_index);

  std::unique_ptr<LuaState> state_;
  std::array<int, kPhaseCount> functions_{};  // registry refs, kLoad = chunk
  BodyMode request_body_ = BodyMode::kNone;
  BodyMode response_body_ = BodyMode::kNone;
  std::vector<Coroutine> idle_;
};

// How a resume of a phase function ended.
struct Outcome {
  enum class Kind { kDone, kRespond, kHttpCall, kFailed };
  Kind kind = Kind::kDone;
  std::string error;  // kFailed: the Lua error, or the limit that was exceeded
};

// One call of a phase function on a fresh coroutine of `vm`, which must have it.
class PhaseRun {
 public:
  PhaseRun(ScriptVm& vm, Call& call);
  ~PhaseRun();
  PhaseRun(const PhaseRun&) = delete;
  PhaseRun& operator=(const PhaseRun&) = delete;

  Outcome Start();
  // Hands an http_call's result to the coroutine (after Outcome::kHttpCall).
  Outcome Continue(const http_client::Result& result);
  // After kDone: the phase function's first return value when it is a string.
  std::optional<std::string> ReturnedString() const;

 private:
  Outcome Resume(int nargs);
  std::string Describe() const;

  ScriptVm& vm_;
  Call& call_;
  ScriptVm::Coroutine coroutine_;
  lua_State* thread_;
  int nresults_ = 0;
  bool finished_ = false;  // returned normally: the coroutine can serve another call
};

}  // namespace meshplug::plugins::lua
