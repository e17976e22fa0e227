#include "plugins/lua/host_api.h"

#include <boost/beast/core/string.hpp>

#include <atomic>
#include <cctype>
#include <cmath>
#include <exception>

#include "common/strings.h"
#include "plugins/lua/sandbox.h"
#include "plugins/lua/struct_to_lua.h"

// Lua raises errors with longjmp: the C functions below never hold objects with
// destructors across a call that can raise, and Guarded<> turns C++ exceptions into Lua
// errors before they can unwind through Lua's own frames.

namespace meshplug::plugins::lua {
namespace {

namespace beast = boost::beast;

enum class Kind : uint8_t {
  kRequest,
  kResponse,
  kRequestHeaders,
  kResponseHeaders,
  kContext,
  kShared,
  kConnection,
};

// The userdata behind every host object: which call it belongs to and what it shows.
struct HostRef {
  uint64_t call_id;
  Kind kind;
};

constexpr char kRequestMeta[] = "meshplug.request";
constexpr char kResponseMeta[] = "meshplug.response";
constexpr char kHeadersMeta[] = "meshplug.headers";
constexpr char kContextMeta[] = "meshplug.ctx";
constexpr char kSharedMeta[] = "meshplug.shared";
constexpr char kConnectionMeta[] = "meshplug.conn";

const char* MetatableOf(Kind kind) {
  switch (kind) {
    case Kind::kRequest: return kRequestMeta;
    case Kind::kResponse: return kResponseMeta;
    case Kind::kRequestHeaders:
    case Kind::kResponseHeaders: return kHeadersMeta;
    case Kind::kContext: return kContextMeta;
    case Kind::kShared: return kSharedMeta;
    case Kind::kConnection: return kConnectionMeta;
  }
  return kContextMeta;
}

template <lua_CFunction F>
int Guarded(lua_State* L) {
  try {
    return F(L);
  } catch (const std::exception& e) {
    lua_pushstring(L, e.what());
  }
  return lua_error(L);
}

void PushRef(lua_State* L, const Call& call, Kind kind, int user_values) {
  auto* ref = static_cast<HostRef*>(lua_newuserdatauv(L, sizeof(HostRef), user_values));
  *ref = HostRef{call.id, kind};
  luaL_setmetatable(L, MetatableOf(kind));
}

Call& RunningCall(lua_State* L) {
  // Every resume of a plugin state runs a Call (see InstallHostApi).
  return *static_cast<Call*>(LuaState::Running(L));
}

struct Bound {
  Call& call;
  const HostRef& ref;
};

// The host object at `index` and its call, which must be the running one: objects kept in
// a global and used by a later call are refused.
Bound Bind(lua_State* L, int index, const char* metatable) {
  const auto* ref = static_cast<const HostRef*>(luaL_checkudata(L, index, metatable));
  Budget* running = LuaState::Running(L);
  if (running == nullptr || static_cast<Call*>(running)->id != ref->call_id) {
    constexpr size_t kPrefix = sizeof("meshplug.") - 1;
    luaL_error(L, "%s object used outside the call it was passed to", metatable + kPrefix);
  }
  return {*static_cast<Call*>(running), *ref};
}

std::string_view CheckString(lua_State* L, int index) {
  size_t size = 0;
  const char* data = luaL_checklstring(L, index, &size);
  return {data, size};
}

void PushString(lua_State* L, std::string_view text) { lua_pushlstring(L, text.data(), text.size()); }

void PushStringOrNil(lua_State* L, std::string_view text) {
  if (text.empty()) {
    lua_pushnil(L);
  } else {
    PushString(L, text);
  }
}

// Pushes user value `slot` of the userdata at `index`, made by `make` on first use.
template <typename Make>
void PushCached(lua_State* L, int index, int slot, Make make) {
  if (lua_getiuservalue(L, index, slot) != LUA_TNIL) return;
  lua_pop(L, 1);
  make();
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, index, slot);
}

// --- validation -------------------------------------------------------------------------

bool IsFieldValue(std::string_view text) {
  for (const unsigned char c : text) {
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  return true;
}

bool IsTarget(std::string_view text) {
  if (text.empty()) return false;
  for (const unsigned char c : text) {
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

void CheckHeader(lua_State* L, std::string_view name, std::string_view value) {
  // The views here all come from Lua strings, which are NUL-terminated.
  if (!IsHttpToken(name)) luaL_error(L, "invalid header name '%s'", name.data());
  if (beast::iequals(name, "content-length") || beast::iequals(name, "transfer-encoding")) {
    luaL_error(L, "header '%s' is managed by the proxy", name.data());
  }
  if (!IsFieldValue(value)) {
    luaL_error(L, "invalid value for header '%s' (control characters)", name.data());
  }
}

// A header value given by a script: a string or a number.
std::string_view HeaderValue(lua_State* L, int index, std::string_view name) {
  const int type = lua_type(L, index);
  if (type != LUA_TSTRING && type != LUA_TNUMBER) {
    luaL_error(L, "header '%s' must be a string or a number, not %s", name.data(),
               luaL_typename(L, index));
  }
  size_t size = 0;
  const char* data = lua_tolstring(L, index, &size);
  return {data, size};
}

// Copies {name = value} from the table at `index` into `fields` (raw access only).
void ReadHeaderTable(lua_State* L, int index, http::fields& fields) {
  luaL_checktype(L, index, LUA_TTABLE);
  index = lua_absindex(L, index);
  lua_pushnil(L);
  while (lua_next(L, index) != 0) {
    if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "header names must be strings");
    size_t size = 0;
    const char* name = lua_tolstring(L, -2, &size);
    const std::string_view value = HeaderValue(L, -1, name);
    CheckHeader(L, {name, size}, value);
    fields.insert(std::string_view(name, size), value);
    lua_pop(L, 1);
  }
}

// --- headers ----------------------------------------------------------------------------

const http::fields& ReadHeaders(lua_State* L) {
  const Bound bound = Bind(L, 1, kHeadersMeta);
  const Subject& subject = bound.call.subject;
  if (bound.ref.kind == Kind::kRequestHeaders) return *subject.request;
  return *subject.response;
}

http::fields& WriteHeaders(lua_State* L) {
  const Bound bound = Bind(L, 1, kHeadersMeta);
  Subject& subject = bound.call.subject;
  http::fields* fields = bound.ref.kind == Kind::kRequestHeaders
                             ? static_cast<http::fields*>(subject.mutable_request)
                             : static_cast<http::fields*>(subject.mutable_response);
  if (fields == nullptr) luaL_error(L, "headers are read-only in %s", PhaseName(bound.call.phase));
  return *fields;
}

int HeadersGet(lua_State* L) {
  const http::fields& fields = ReadHeaders(L);
  const auto found = fields.find(CheckString(L, 2));
  if (found == fields.end()) {
    lua_pushnil(L);
  } else {
    PushString(L, found->value());
  }
  return 1;
}

int HeadersSet(lua_State* L) {
  http::fields& fields = WriteHeaders(L);
  const std::string_view name = CheckString(L, 2);
  if (lua_isnoneornil(L, 3)) {
    fields.erase(name);
    return 0;
  }
  const std::string_view value = HeaderValue(L, 3, name);
  CheckHeader(L, name, value);
  fields.set(name, value);
  return 0;
}

int HeadersAdd(lua_State* L) {
  http::fields& fields = WriteHeaders(L);
  const std::string_view name = CheckString(L, 2);
  const std::string_view value = HeaderValue(L, 3, name);
  CheckHeader(L, name, value);
  fields.insert(name, value);
  return 0;
}

int HeadersRemove(lua_State* L) {
  http::fields& fields = WriteHeaders(L);
  fields.erase(CheckString(L, 2));
  return 0;
}

int HeadersNext(lua_State* L) {
  const lua_Integer index = lua_tointeger(L, lua_upvalueindex(2));
  if (lua_rawgeti(L, lua_upvalueindex(1), 2 * index + 1) == LUA_TNIL) return 1;
  lua_rawgeti(L, lua_upvalueindex(1), 2 * index + 2);
  lua_pushinteger(L, index + 1);
  lua_replace(L, lua_upvalueindex(2));
  return 2;
}

// for name, value in headers:each() do ... end — iterates a snapshot, so the loop may
// change the headers.
int HeadersEach(lua_State* L) {
  const http::fields& fields = ReadHeaders(L);
  lua_newtable(L);
  lua_Integer n = 0;
  for (const auto& field : fields) {
    PushString(L, field.name_string());
    lua_rawseti(L, -2, ++n);
    PushString(L, field.value());
    lua_rawseti(L, -2, ++n);
  }
  lua_pushinteger(L, 0);
  lua_pushcclosure(L, HeadersNext, 2);
  return 1;
}

// --- req / resp -------------------------------------------------------------------------

// Fields that requests and responses share: headers, body, last. Pushes and returns true
// when `key` is one of them.
bool IndexMessage(lua_State* L, const Call& call, std::string_view key, Kind headers,
                  Phase body_phase) {
  if (key == "headers") {
    PushCached(L, 1, 1, [&] { PushRef(L, call, headers, 0); });
  } else if (key == "body") {
    if (call.phase == body_phase) {
      PushString(L, *call.subject.body);
    } else {
      lua_pushnil(L);
    }
  } else if (key == "last") {
    lua_pushboolean(L, call.phase == body_phase && call.subject.last);
  } else {
    return false;
  }
  return true;
}

bool AssignBody(lua_State* L, Call& call, std::string_view key, Phase body_phase) {
  if (key != "body") return false;
  if (call.phase != body_phase) {
    luaL_error(L, "body can only be set in %s", PhaseName(body_phase));
  }
  const std::string_view body = CheckString(L, 3);
  call.subject.body->assign(body.data(), body.size());
  return true;
}

int RequestIndex(lua_State* L) {
  const Bound bound = Bind(L, 1, kRequestMeta);
  const std::string_view key = CheckString(L, 2);
  const auto& request = *bound.call.subject.request;
  if (key == "method") {
    PushString(L, request.method_string());
  } else if (key == "path") {
    PushString(L, request.target());
  } else if (!IndexMessage(L, bound.call, key, Kind::kRequestHeaders, Phase::kRequestBody)) {
    lua_pushnil(L);
  }
  return 1;
}

int RequestNewindex(lua_State* L) {
  const Bound bound = Bind(L, 1, kRequestMeta);
  const std::string_view key = CheckString(L, 2);
  http::request_header<>* request = bound.call.subject.mutable_request;
  if (request == nullptr) luaL_error(L, "req is read-only in %s", PhaseName(bound.call.phase));
  if (key == "method") {
    const std::string_view method = CheckString(L, 3);
    if (!IsHttpToken(method)) luaL_error(L, "invalid method '%s'", method.data());
    request->method_string(method);
  } else if (key == "path") {
    const std::string_view path = CheckString(L, 3);
    if (!IsTarget(path)) luaL_error(L, "invalid path (empty, space or control character)");
    request->target(path);
  } else if (!AssignBody(L, bound.call, key, Phase::kRequestBody)) {
    luaL_error(L, "req.%s cannot be set (method, path and body can)", key.data());
  }
  return 0;
}

int ResponseIndex(lua_State* L) {
  const Bound bound = Bind(L, 1, kResponseMeta);
  const std::string_view key = CheckString(L, 2);
  if (key == "status") {
    lua_pushinteger(L, bound.call.subject.response->result_int());
  } else if (!IndexMessage(L, bound.call, key, Kind::kResponseHeaders, Phase::kResponseBody)) {
    lua_pushnil(L);
  }
  return 1;
}

int ResponseNewindex(lua_State* L) {
  const Bound bound = Bind(L, 1, kResponseMeta);
  const std::string_view key = CheckString(L, 2);
  http::response_header<>* response = bound.call.subject.mutable_response;
  if (response == nullptr) luaL_error(L, "resp is read-only in %s", PhaseName(bound.call.phase));
  if (key == "status") {
    const lua_Integer status = luaL_checkinteger(L, 3);
    luaL_argcheck(L, status >= 100 && status <= 999, 3, "status must be 100-999");
    response->result(static_cast<unsigned>(status));
  } else if (!AssignBody(L, bound.call, key, Phase::kResponseBody)) {
    luaL_error(L, "resp.%s cannot be set (status and body can)", key.data());
  }
  return 0;
}

// --- ctx, ctx.shared, conn --------------------------------------------------------------

void PushWorkload(lua_State* L, const WorkloadIdentity* workload) {
  if (workload == nullptr) {
    lua_pushnil(L);
    return;
  }
  lua_createtable(L, 0, 4);
  PushString(L, workload->name);
  lua_setfield(L, -2, "name");
  PushString(L, workload->ns);
  lua_setfield(L, -2, "namespace");
  PushString(L, workload->service_account);
  lua_setfield(L, -2, "service_account");
  lua_createtable(L, 0, static_cast<int>(workload->labels.size()));
  for (const auto& [key, value] : workload->labels) {
    PushString(L, value);
    lua_setfield(L, -2, key.c_str());
  }
  lua_setfield(L, -2, "labels");
}

int ContextIndex(lua_State* L) {
  const Bound bound = Bind(L, 1, kContextMeta);
  const std::string_view key = CheckString(L, 2);
  const Subject& subject = bound.call.subject;
  if (key == "service") {
    PushStringOrNil(L, subject.service);
  } else if (key == "route") {
    PushStringOrNil(L, subject.route);
  } else if (key == "config") {
    PushCached(L, 1, 1, [&] {
      if (subject.config == nullptr) {
        lua_pushnil(L);
      } else {
        PushStruct(L, *subject.config);
      }
    });
  } else if (key == "workload") {
    PushCached(L, 1, 2, [&] { PushWorkload(L, subject.workload); });
  } else if (key == "shared") {
    PushCached(L, 1, 3, [&] { PushRef(L, bound.call, Kind::kShared, 0); });
  } else if (key == "peer") {
    PushCached(L, 1, 4, [&] {
      lua_createtable(L, 0, 1);
      PushStringOrNil(L, subject.peer_identity);
      lua_setfield(L, -2, "identity");
    });
  } else {
    lua_pushnil(L);
  }
  return 1;
}

int ContextNewindex(lua_State* L) {
  Bind(L, 1, kContextMeta);
  return luaL_error(L, "ctx is read-only; keep per-request values in ctx.shared");
}

int SharedIndex(lua_State* L) {
  const Bound bound = Bind(L, 1, kSharedMeta);
  const SharedValues& shared = *bound.call.subject.shared;
  const auto found = shared.find(CheckString(L, 2));
  if (found == shared.end()) {
    lua_pushnil(L);
  } else {
    PushString(L, found->second);
  }
  return 1;
}

int SharedNewindex(lua_State* L) {
  const Bound bound = Bind(L, 1, kSharedMeta);
  SharedValues* shared = bound.call.subject.mutable_shared;
  if (shared == nullptr) luaL_error(L, "ctx.shared is read-only in %s", PhaseName(bound.call.phase));
  const std::string_view key = CheckString(L, 2);
  const int type = lua_type(L, 3);
  if (type == LUA_TNIL) {
    if (const auto found = shared->find(key); found != shared->end()) shared->erase(found);
    return 0;
  }
  if (type != LUA_TSTRING && type != LUA_TNUMBER) {
    luaL_error(L, "ctx.shared holds strings and numbers, not %s", luaL_typename(L, 3));
  }
  size_t size = 0;
  const char* value = lua_tolstring(L, 3, &size);
  shared->insert_or_assign(std::string(key), std::string(value, size));
  return 0;
}

int ConnectionIndex(lua_State* L) {
  const Bound bound = Bind(L, 1, kConnectionMeta);
  if (CheckString(L, 2) == "peer") {
    PushStringOrNil(L, bound.call.subject.peer);
  } else {
    lua_pushnil(L);
  }
  return 1;
}

int ReadOnlyNewindex(lua_State* L) { return luaL_error(L, "conn is read-only"); }

// --- global functions -------------------------------------------------------------------

// The call of a phase that may wait, when L is that call's own coroutine.
Call& WaitingCall(lua_State* L, const char* function) {
  void* host_call = HostCallOf(L);
  if (host_call == nullptr) {
    luaL_error(L, "%s must be called from the phase function, not from a coroutine it created",
               function);
  }
  Call& call = *static_cast<Call*>(host_call);
  if (!PhaseCanYield(call.phase)) {
    luaL_error(L, "%s is not available in %s", function, PhaseName(call.phase));
  }
  if (!lua_isyieldable(L)) {
    luaL_error(L, "%s cannot be called from a metamethod or a library callback", function);
  }
  return call;
}

// respond(status [, headers [, body]]): answers with a local reply and ends the phase;
// it does not return.
int Respond(lua_State* L) {
  Call& call = WaitingCall(L, "respond");
  const lua_Integer status = luaL_checkinteger(L, 1);
  luaL_argcheck(L, status >= 100 && status <= 999, 1, "status must be 100-999");
  call.response = LocalResponse{static_cast<unsigned>(status), {}, {}};
  if (!lua_isnoneornil(L, 2)) ReadHeaderTable(L, 2, call.response.headers);
  if (!lua_isnoneornil(L, 3)) {
    const std::string_view body = CheckString(L, 3);
    call.response.body.assign(body.data(), body.size());
  }
  call.action = Call::Action::kRespond;
  return lua_yield(L, 0);
}

// A string field of the options table at index 1, or `fallback` when absent.
std::string_view OptionString(lua_State* L, const char* field, std::string_view fallback) {
  const int type = lua_getfield(L, 1, field);  // options is a plain script table
  if (type == LUA_TNIL) {
    lua_pop(L, 1);
    return fallback;
  }
  if (type != LUA_TSTRING) luaL_error(L, "http_call: %s must be a string", field);
  size_t size = 0;
  const char* data = lua_tolstring(L, -1, &size);
  lua_pop(L, 1);  // the options table still references the string
  return {data, size};
}

bool SetTarget(std::string_view text, http_client::HostPort& target) {
  auto parsed = http_client::ParseHostPort(text);
  if (!parsed) return false;
  target = std::move(*parsed);
  return true;
}

// http_call{host = "host:port", method = "GET", path = "/", headers = {}, body = "",
//           timeout = 1}: waits for the reply without blocking the worker; returns
// {status, headers, body} or nil and an error message.
int HttpCall(lua_State* L) {
  Call& call = WaitingCall(L, "http_call");
  luaL_checktype(L, 1, LUA_TTABLE);
  const LuaLimits& limits = call.env.limits;
  if (call.http_calls >= limits.http_calls_per_call) {
    luaL_error(L, "http_call: more than %d calls in one %s", limits.http_calls_per_call,
               PhaseName(call.phase));
  }
  http_client::Request& request = call.http_request;
  request = http_client::Request{};
  const std::string_view host = OptionString(L, "host", "");
  if (!SetTarget(host, request.target)) {
    luaL_error(L, "http_call: host must be \"host:port\", got '%s'", host.data());
  }
  const std::string_view method = OptionString(L, "method", "GET");
  if (!IsHttpToken(method)) {
    // Like a failed call, not a script error: the method often comes from the request.
    lua_pushnil(L);
    lua_pushstring(L, "http_call: the method is not an HTTP token");
    return 2;
  }
  request.method.assign(method.data(), method.size());
  const std::string_view path = OptionString(L, "path", "/");
  if (!IsTarget(path)) luaL_error(L, "http_call: invalid path");
  request.path.assign(path.data(), path.size());
  if (lua_getfield(L, 1, "headers") != LUA_TNIL) ReadHeaderTable(L, -1, request.headers);
  lua_pop(L, 1);
  const std::string_view body = OptionString(L, "body", "");
  request.body.assign(body.data(), body.size());

  lua_getfield(L, 1, "timeout");
  const double timeout = lua_isnil(L, -1) ? 1.0 : luaL_checknumber(L, -1);
  lua_pop(L, 1);
  const double max_timeout = std::chrono::duration<double>(limits.http_call_max_timeout).count();
  if (!(timeout > 0 && timeout <= max_timeout)) {
    luaL_error(L, "http_call: timeout must be more than 0 and at most %f seconds", max_timeout);
  }
  request.timeout = std::max(std::chrono::milliseconds(1),
                             std::chrono::milliseconds(std::llround(timeout * 1000)));
  request.max_response_body = limits.http_call_max_response_body;
  ++call.http_calls;
  call.action = Call::Action::kHttpCall;
  return lua_yield(L, 0);
}

void Emit(lua_State* L, LogLevel level, int message_index) {
  size_t size = 0;
  const char* message = lua_tolstring(L, message_index, &size);
  const PluginEnv& env = RunningCall(L).env;
  env.log(level, env.name, {message, size});
}

// log(level, message): level is "debug", "info", "warn" or "error".
int Log(lua_State* L) {
  LogLevel level;
  if (!log::ParseLevel(CheckString(L, 1), &level)) luaL_argerror(L, 1, "level must be debug, info, warn or error");
  luaL_tolstring(L, 2, nullptr);
  Emit(L, level, -1);
  return 0;
}

// print(...): like Lua's, into the plugin log at level info.
int Print(lua_State* L) {
  const int n = lua_gettop(L);
  luaL_Buffer buffer;
  luaL_buffinit(L, &buffer);
  for (int i = 1; i <= n; ++i) {
    if (i > 1) luaL_addchar(&buffer, '\t');
    luaL_tolstring(L, i, nullptr);
    luaL_addvalue(&buffer);
  }
  luaL_pushresult(&buffer);
  Emit(L, LogLevel::kInfo, -1);
  return 0;
}

bool IsCounterName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (const unsigned char c : name) {
    if (!std::isalnum(c) && c != '_') return false;
  }
  return true;
}

// counter(name [, n]): adds n (default 1) to the plugin's counter `name`.
int Counter(lua_State* L) {
  const std::string_view name = CheckString(L, 1);
  if (!IsCounterName(name)) luaL_argerror(L, 1, "counter names are 1-64 letters, digits or _");
  const lua_Integer n = luaL_optinteger(L, 2, 1);
  if (!RunningCall(L).env.stats->Add(name, n)) {
    luaL_error(L, "counter: more than %d counters", static_cast<int>(PluginStats::kMaxCounters));
  }
  return 0;
}

void NewMetatable(lua_State* L, const char* name, lua_CFunction index, lua_CFunction newindex) {
  luaL_newmetatable(L, name);
  lua_pushcfunction(L, index);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pushliteral(L, "locked");
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);
}

void SetFunction(lua_State* L, int table, const char* name, lua_CFunction function) {
  lua_pushcfunction(L, function);
  lua_setfield(L, table, name);
}

std::atomic<uint64_t> next_call_id{1};

}  // namespace

const char* PhaseName(Phase phase) {
  switch (phase) {
    case Phase::kLoad: return "the script's top level";
    case Phase::kRequest: return "on_request";
    case Phase::kRequestBody: return "on_request_body";
    case Phase::kResponse: return "on_response";
    case Phase::kResponseBody: return "on_response_body";
    case Phase::kLog: return "on_log";
    case Phase::kTcpConnect: return "on_tcp_connect";
    case Phase::kTcpData: return "on_tcp_data";
    case Phase::kTcpClose: return "on_tcp_close";
  }
  return "?";
}

bool PhaseCanYield(Phase phase) {
  return phase != Phase::kLoad && phase != Phase::kLog && phase != Phase::kTcpClose;
}

Call::Call(const PluginEnv& env, Phase phase, Subject subject)
    : Budget(env.limits.instructions_per_call, env.limits.time_per_call),
      env(env),
      phase(phase),
      id(next_call_id.fetch_add(1, std::memory_order_relaxed)),
      subject(subject) {}

void InstallHostApi(lua_State* L, int env_index) {
  env_index = lua_absindex(L, env_index);
  NewMetatable(L, kRequestMeta, Guarded<RequestIndex>, Guarded<RequestNewindex>);
  NewMetatable(L, kResponseMeta, Guarded<ResponseIndex>, Guarded<ResponseNewindex>);
  NewMetatable(L, kContextMeta, Guarded<ContextIndex>, Guarded<ContextNewindex>);
  NewMetatable(L, kSharedMeta, Guarded<SharedIndex>, Guarded<SharedNewindex>);
  NewMetatable(L, kConnectionMeta, Guarded<ConnectionIndex>, Guarded<ReadOnlyNewindex>);

  luaL_newmetatable(L, kHeadersMeta);
  lua_newtable(L);
  SetFunction(L, -2, "get", Guarded<HeadersGet>);
  SetFunction(L, -2, "set", Guarded<HeadersSet>);
  SetFunction(L, -2, "add", Guarded<HeadersAdd>);
  SetFunction(L, -2, "remove", Guarded<HeadersRemove>);
  SetFunction(L, -2, "each", Guarded<HeadersEach>);
  lua_setfield(L, -2, "__index");
  lua_pushliteral(L, "locked");
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);

  SetFunction(L, env_index, "respond", Guarded<Respond>);
  SetFunction(L, env_index, "http_call", Guarded<HttpCall>);
  SetFunction(L, env_index, "log", Guarded<Log>);
  SetFunction(L, env_index, "print", Guarded<Print>);
  SetFunction(L, env_index, "counter", Guarded<Counter>);
}

int PushArguments(lua_State* co, const Call& call) {
  const auto push_context = [&] { PushRef(co, call, Kind::kContext, 4); };
  switch (call.phase) {
    case Phase::kLoad:
      return 0;
    case Phase::kRequest:
    case Phase::kRequestBody:
      PushRef(co, call, Kind::kRequest, 1);
      push_context();
      return 2;
    case Phase::kResponse:
    case Phase::kResponseBody:
      PushRef(co, call, Kind::kResponse, 1);
      push_context();
      return 2;
    case Phase::kLog:
      push_context();
      return 1;
    case Phase::kTcpConnect:
    case Phase::kTcpClose:
      PushRef(co, call, Kind::kConnection, 0);
      push_context();
      return 2;
    case Phase::kTcpData:
      PushRef(co, call, Kind::kConnection, 0);
      push_context();
      lua_pushstring(co, call.subject.direction == Direction::kUpstreamToDownstream
                             ? "to_downstream"
                             : "to_upstream");
      PushString(co, *call.subject.body);
      return 4;
  }
  return 0;
}

int PushHttpResult(lua_State* co, const http_client::Result& result) {
  if (!result.response) {
    lua_pushnil(co);
    PushString(co, result.message);
    return 2;
  }
  const http_client::Response& response = *result.response;
  lua_createtable(co, 0, 3);
  lua_pushinteger(co, response.status);
  lua_setfield(co, -2, "status");
  lua_newtable(co);
  for (const auto& field : response.headers) {
    // Lower-case names; repeated fields are joined with ", " (RFC 9110 5.3).
    std::string name(field.name_string());
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    PushString(co, name);
    if (lua_rawget(co, -2) == LUA_TSTRING) {
      lua_pushliteral(co, ", ");
      PushString(co, field.value());
      lua_concat(co, 3);
    } else {
      lua_pop(co, 1);
      PushString(co, field.value());
    }
    PushString(co, name);
    lua_insert(co, -2);
    lua_rawset(co, -3);
  }
  lua_setfield(co, -2, "headers");
  PushString(co, response.body);
  lua_setfield(co, -2, "body");
  return 1;
}

}  // namespace meshplug::plugins::lua
