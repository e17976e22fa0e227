#include "plugins/lua/script_vm.h"

#include "plugins/lua/sandbox.h"

namespace meshplug::plugins::lua {
namespace {

// The body flag `global` ("request_body"/"response_body"): "buffer", "stream" or absent.
// Absent means kBuffer when the script has the body function, else kNone.
absl::StatusOr<BodyMode> ReadBodyMode(lua_State* L, int env_index, const char* global,
                                      bool has_function) {
  lua_getfield(L, env_index, global);
  const char* value = lua_tostring(L, -1);
  const std::string mode = value != nullptr ? value : "";
  const bool is_nil = lua_isnil(L, -1);
  lua_pop(L, 1);
  if (is_nil) return has_function ? BodyMode::kBuffer : BodyMode::kNone;
  if (mode == "buffer") return BodyMode::kBuffer;
  if (mode == "stream") return BodyMode::kStream;
  return absl::InvalidArgumentError(std::string(global) +
                                    " must be \"buffer\" or \"stream\", not '" + mode + "'");
}

}  // namespace

absl::StatusOr<std::unique_ptr<ScriptVm>> ScriptVm::Load(const PluginEnv& env,
                                                         std::string_view source) {
  // absl::string_view is not std::string_view in Debian's Abseil.
  auto fail = [&](auto what) {
    return absl::InvalidArgumentError("plugin " + env.name + ": " + std::string(what));
  };
  std::unique_ptr<LuaState> state = LuaState::Create(env.limits.memory_bytes);
  if (state == nullptr) return fail("cannot create a Lua state");
  std::unique_ptr<ScriptVm> vm(new ScriptVm(std::move(state)));
  vm->functions_.fill(LUA_NOREF);
  lua_State* L = vm->state_->get();
  try {
    PushSandbox(L);
    const int env_index = lua_gettop(L);
    InstallHostApi(L, env_index);
    const std::string chunk_name = "=" + env.name;
    // Mode "t": text only, a precompiled chunk is refused.
    if (luaL_loadbufferx(L, source.data(), source.size(), chunk_name.c_str(), "t") != LUA_OK) {
      return fail(lua_tostring(L, -1));
    }
    lua_pushvalue(L, env_index);
    lua_setupvalue(L, -2, 1);  // the chunk's _ENV: the sandbox, not the real globals
    vm->functions_[Index(Phase::kLoad)] = luaL_ref(L, LUA_REGISTRYINDEX);

    Call call(env, Phase::kLoad, Subject{});
    PhaseRun run(*vm, call);
    const Outcome outcome = run.Start();
    if (outcome.kind != Outcome::Kind::kDone) {
      return fail(outcome.kind == Outcome::Kind::kFailed
                      ? outcome.error
                      : "respond and http_call are not available at the top level");
    }
    if (absl::Status status = vm->ReadGlobals(env_index); !status.ok()) {
      return fail(status.message());
    }
    lua_pop(L, 1);  // the environment; the chunk's upvalue keeps it
  } catch (const LuaPanic& panic) {
    return fail(panic.what());
  }
  return vm;
}

absl::Status ScriptVm::ReadGlobals(int env_index) {
  lua_State* L = state_->get();
  for (const Phase phase : kPhaseFunctions) {
    const int type = lua_getfield(L, env_index, PhaseName(phase));
    if (type == LUA_TNIL) {
      lua_pop(L, 1);
    } else if (type == LUA_TFUNCTION) {
      functions_[Index(phase)] = luaL_ref(L, LUA_REGISTRYINDEX);
    } else {
      lua_pop(L, 1);
      return absl::InvalidArgumentError(std::string(PhaseName(phase)) +
                                        " must be a function, not a " + lua_typename(L, type));
    }
  }
  auto request = ReadBodyMode(L, env_index, "request_body", Has(Phase::kRequestBody));
  if (!request.ok()) return request.status();
  auto response = ReadBodyMode(L, env_index, "response_body", Has(Phase::kResponseBody));
  if (!response.ok()) return response.status();
  request_body_ = *request;
  response_body_ = *response;
  return absl::OkStatus();
}

ScriptVm::Coroutine ScriptVm::AcquireCoroutine() {
  if (!idle_.empty()) {
    const Coroutine coroutine = idle_.back();
    idle_.pop_back();
    return coroutine;
  }
  lua_State* L = state_->get();
  lua_State* thread = lua_newthread(L);
  return {thread, luaL_ref(L, LUA_REGISTRYINDEX)};  // keeps it alive while it waits
}

void ScriptVm::ReleaseCoroutine(Coroutine coroutine, bool reusable) {
  RetireHostCoroutine(coroutine.thread);
  if (reusable && idle_.size() < kMaxIdleCoroutines) {
    lua_settop(coroutine.thread, 0);
    idle_.push_back(coroutine);
    return;
  }
  // Failed or abandoned (respond) coroutines are left to the collector.
  luaL_unref(state_->get(), LUA_REGISTRYINDEX, coroutine.ref);
}

PhaseRun::PhaseRun(ScriptVm& vm, Call& call)
    : vm_(vm), call_(call), coroutine_(vm.AcquireCoroutine()), thread_(coroutine_.thread) {
  SetHostCall(thread_, &call_);
  lua_rawgeti(thread_, LUA_REGISTRYINDEX, vm_.functions_[ScriptVm::Index(call_.phase)]);
}

PhaseRun::~PhaseRun() {
  if (vm_.broken()) return;
  vm_.ReleaseCoroutine(coroutine_, finished_ && call_.breach.empty());
  // A breach may leave the state near its cap; give the next call a clean start.
  if (!call_.breach.empty()) lua_gc(vm_.state_->get(), LUA_GCCOLLECT);
}

Outcome PhaseRun::Start() { return Resume(PushArguments(thread_, call_)); }

Outcome PhaseRun::Continue(const http_client::Result& result) {
  return Resume(PushHttpResult(thread_, result));
}

Outcome PhaseRun::Resume(int nargs) {
  call_.action = Call::Action::kNone;
  const int status = vm_.state_->Resume(thread_, call_, nargs, &nresults_);
  if (status == LUA_OK) {
    finished_ = true;
    return {Outcome::Kind::kDone, {}};
  }
  if (status != LUA_YIELD) return {Outcome::Kind::kFailed, Describe()};
  lua_pop(thread_, nresults_);
  switch (call_.action) {
    case Call::Action::kRespond:
      return {Outcome::Kind::kRespond, {}};
    case Call::Action::kHttpCall:
      return {Outcome::Kind::kHttpCall, {}};
    case Call::Action::kNone:
      break;
  }
  return {Outcome::Kind::kFailed,
          "coroutine.yield outside a coroutine the script created (use http_call to wait)"};
}

std::string PhaseRun::Describe() const {
  const char* message = lua_tostring(thread_, -1);
  std::string error = message != nullptr
                          ? message
                          : std::string("(error object is a ") + luaL_typename(thread_, -1) + " value)";
  if (!call_.breach.empty() && error.find(call_.breach) == std::string::npos) {
    error = call_.breach + " (" + error + ")";
  }
  return error;
}

std::optional<std::string> PhaseRun::ReturnedString() const {
  if (nresults_ < 1 || lua_type(thread_, -nresults_) != LUA_TSTRING) return std::nullopt;
  size_t size = 0;
  const char* data = lua_tolstring(thread_, -nresults_, &size);
  return std::string(data, size);
}

}  // namespace meshplug::plugins::lua
