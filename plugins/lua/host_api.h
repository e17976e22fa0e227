// The script API: host objects (req, resp, conn, ctx, headers, ctx.shared) and the global
// functions respond, http_call, log, print and counter.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it

#include <lua.hpp>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "plugins/api/plugin.h"
#include "plugins/http_client/http_client.h"
#include "plugins/lua/lua_state.h"
#include "plugins/lua/options.h"

namespace meshplug::plugins::lua {

using SharedValues = std::map<std::string, std::string, std::less<>>;

// What one plugin's states share: identity, limits, logging, counters.
struct PluginEnv {
  std::string name;
  LuaLimits limits;
  LogSink log;
  std::shared_ptr<PluginStats> stats;
};

enum class Phase {
  kLoad,  // the script's top level, once per state
  kRequest,
  kRequestBody,
  kResponse,
  kResponseBody,
  kLog,
  kTcpConnect,
  kTcpData,
  kTcpClose,
};
inline constexpr size_t kPhaseCount = static_cast<size_t>(Phase::kTcpClose) + 1;
inline constexpr Phase kPhaseFunctions[] = {
    Phase::kRequest, Phase::kRequestBody, Phase::kResponse,   Phase::kResponseBody,
    Phase::kLog,     Phase::kTcpConnect,  Phase::kTcpData,    Phase::kTcpClose};

// The script function of a phase, e.g. "on_request"; "the script's top level" for kLoad.
const char* PhaseName(Phase phase);
// Whether the phase may wait (http_call) or answer (respond).
bool PhaseCanYield(Phase phase);

// What the host objects of one call refer to. The mutable_* views are null where the
// phase may only read.
struct Subject {
  const http::request_header<>* request = nullptr;
  http::request_header<>* mutable_request = nullptr;
  const http::response_header<>* response = nullptr;
  http::response_header<>* mutable_response = nullptr;
  std::string* body = nullptr;  // the chunk of a body phase, or the data of on_tcp_data
  bool last = false;            // body phases: the chunk ends the body
  std::optional<Direction> direction;
  std::string_view peer;

  std::string_view service;
  std::string_view route;
  std::string_view peer_identity;
  const WorkloadIdentity* workload = nullptr;
  const ServiceResolver* resolver = nullptr;  // mesh names for http_call
  net::UpstreamPool* pool = nullptr;               // kept-alive connections for http_call
  const net::TlsCredentials* tls = nullptr;        // mTLS for http_call to mesh services
  const google::protobuf::Struct* config = nullptr;
  const SharedValues* shared = nullptr;
  SharedValues* mutable_shared = nullptr;
};

// One call of a phase function: its budget, what its host objects see, and what it asked
// the host for when it yielded.
struct Call : Budget {
  Call(const PluginEnv& env, Phase phase, Subject subject);

  enum class Action { kNone, kRespond, kHttpCall };

  const PluginEnv& env;
  const Phase phase;
  const uint64_t id;  // unique in the process: host objects check it on every use
  Subject subject;
  Action action = Action::kNone;
  LocalResponse response;             // for kRespond
  http_client::Request http_request;  // for kHttpCall
  int http_calls = 0;
};

// Registers the host objects' metatables in L and adds the global functions to the table
// at `env_index`. Every resume of L must run a Call (the functions find it through
// LuaState::Running).
void InstallHostApi(lua_State* L, int env_index);

// Pushes the phase function's arguments for `call` onto co and returns their number.
int PushArguments(lua_State* co, const Call& call);

// Pushes what http_call returns to the script: a table {status, headers, body}, or nil
// and the error message. Returns the number of values.
int PushHttpResult(lua_State* co, const http_client::Result& result);

}  // namespace meshplug::plugins::lua
