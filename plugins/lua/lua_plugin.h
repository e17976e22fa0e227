// A Lua script as an HTTP and TCP plugin of the agent's chains.
//
// The agent builds one LuaPlugin per plugin *version* (LuaPlugin::Create) and shares the
// shared_ptr between every chain set that mounts that version. Each worker thread that
// runs the plugin gets its own Lua state, made on first use; all states go when the last
// chain set referencing the plugin lets go of it, which in-flight requests delay because
// they hold their chain set. Each step runs the phase function on a fresh coroutine of
// the thread's state.
//
// Precondition: a request's steps stay on the thread that started them (one io_context
// per worker thread, run by that thread), as the Lua state is not thread-safe.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it

#include <absl/status/statusor.h>

#include <array>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "plugins/api/plugin.h"
#include "plugins/lua/host_api.h"
#include "plugins/lua/options.h"
#include "plugins/lua/script_vm.h"

namespace meshplug::plugins::lua {

struct LuaPluginOptions {
  LuaLimits limits;
  LogSink log = StderrJsonLog();
  // Shared between versions of one plugin if the agent wants continuous counters; a fresh
  // one when null.
  std::shared_ptr<PluginStats> stats;
};

class LuaPlugin final : public HttpPlugin, public TcpPlugin {
 public:
  // Compiles and loads `script` once to check it (syntax, top level, phase functions,
  // body flags). The error names the plugin and the problem.
  static absl::StatusOr<std::shared_ptr<LuaPlugin>> Create(std::string name,
                                                           std::string version,
                                                           std::string script,
                                                           LuaPluginOptions options = {});

  const std::string& name() const override { return env_.name; }
  const std::string& version() const { return version_; }
  PluginStats& stats() const { return *env_.stats; }
  // Which chains the script can serve: it defines an HTTP / a TCP phase function.
  bool handles_http() const;
  bool handles_tcp() const;

  // HttpPlugin. A script error or limit breach answers 500 (request or response phase),
  // counts an error and logs it with the plugin's name.
  BodyMode request_body_mode() const override { return request_body_; }
  BodyMode response_body_mode() const override { return response_body_; }
  awaitable<Verdict> OnRequestHeaders(HttpContext& ctx) override;
  awaitable<Verdict> OnRequestBody(HttpContext& ctx, std::string& chunk, bool last) override;
  awaitable<Verdict> OnResponseHeaders(HttpContext& ctx) override;
  awaitable<Verdict> OnResponseBody(HttpContext& ctx, std::string& chunk, bool last) override;
  void OnLog(const HttpContext& ctx) override;
  bool has_request_header_step() const override;
  bool has_response_header_step() const override;

  // TcpPlugin. A failure answers Respond (close the connection).
  awaitable<Verdict> OnConnect(TcpContext& ctx) override;
  awaitable<Verdict> OnData(TcpContext& ctx, Direction direction, std::string& data) override;
  void OnClose(const TcpContext& ctx) override;

 private:
  LuaPlugin(PluginEnv env, std::string version, std::string script, const ScriptVm& probe);

  // The calling thread's state, loaded on first use.
  absl::StatusOr<ScriptVm*> ThreadVm();
  // Runs the phase function of `phase` over `subject` to its end, waiting for http_calls.
  awaitable<Verdict> Step(Phase phase, Subject subject);
  // on_log / on_tcp_close: cannot wait or answer.
  void Notify(Phase phase, Subject subject);
  Verdict Fail(Phase phase, std::string_view error);

  const PluginEnv env_;
  const std::string version_;
  const std::string script_;
  std::array<bool, kPhaseCount> phases_{};
  BodyMode request_body_ = BodyMode::kNone;
  BodyMode response_body_ = BodyMode::kNone;

  std::mutex mu_;
  std::unordered_map<std::thread::id, std::unique_ptr<ScriptVm>> vms_;
  // States replaced after a panic; kept until the plugin goes since suspended calls may
  // still reference them.
  std::vector<std::unique_ptr<ScriptVm>> retired_;
};

}  // namespace meshplug::plugins::lua
