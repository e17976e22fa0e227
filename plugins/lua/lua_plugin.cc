#include "plugins/lua/lua_plugin.h"

#include <exception>

#include "net/tls.h"
#include "plugins/http_client/http_client.h"

namespace meshplug::plugins::lua {
namespace {

size_t Index(Phase phase) { return static_cast<size_t>(phase); }

// What HTTP and TCP contexts both give a script: identity, the resolver and pool for
// http_call, the config, and the per-connection shared table (read-only).
template <typename Context>
Subject Common(const Context& ctx, const google::protobuf::Struct* config) {
  Subject subject;
  subject.service = ctx.service;
  subject.workload = ctx.workload;
  subject.resolver = ctx.resolver;
  subject.pool = ctx.pool;
  subject.tls = ctx.tls;
  subject.config = config;
  subject.shared = &ctx.shared;
  return subject;
}

// What a read-only phase (on_log) sees of an HTTP request.
Subject Observe(const HttpContext& ctx, const google::protobuf::Struct* config) {
  Subject subject = Common(ctx, config);
  subject.request = &ctx.request;
  subject.response = ctx.response ? &*ctx.response : nullptr;
  subject.route = ctx.route;
  subject.peer_identity = ctx.peer_identity;
  return subject;
}

Subject Bind(HttpContext& ctx, const google::protobuf::Struct* config) {
  Subject subject = Observe(ctx, config);
  subject.mutable_request = &ctx.request;
  subject.mutable_response = ctx.response ? &*ctx.response : nullptr;
  subject.mutable_shared = &ctx.shared;
  return subject;
}

Subject Observe(const TcpContext& ctx, const google::protobuf::Struct* config) {
  Subject subject = Common(ctx, config);
  subject.peer = ctx.peer;
  subject.peer_identity = ctx.peer_identity;
  return subject;
}

Subject Bind(TcpContext& ctx, const google::protobuf::Struct* config) {
  Subject subject = Observe(ctx, config);
  subject.mutable_shared = &ctx.shared;
  return subject;
}

awaitable<Verdict> Continue() { co_return Verdict::Continue(); }

// A mesh service name goes to one of the service's endpoints; the Host header keeps the
// name the script used. Other names are left to DNS. An endpoint behind an agent is
// called with mTLS to exactly that agent's identity, as the proxy does: never in
// plaintext, so an error when this agent has no certificate yet.
absl::Status ResolveMeshName(const Subject& subject, http_client::Request& request) {
  if (subject.resolver == nullptr) return absl::OkStatus();
  const std::string name = http_client::Describe(request.target);
  const std::optional<UpstreamTarget> target = subject.resolver->Resolve(name);
  if (!target) return absl::OkStatus();
  request.headers.set(http::field::host, name);
  request.target = http_client::HostPort{target->host, target->port};
  if (target->identity.empty()) return absl::OkStatus();
  auto tls = net::OriginationTo(subject.tls, target->identity);
  if (!tls.ok()) return tls.status();
  request.tls = *std::move(tls);
  return absl::OkStatus();
}

Subject WithBody(Subject subject, std::string& body, bool last) {
  subject.body = &body;
  subject.last = last;
  return subject;
}

}  // namespace

absl::StatusOr<std::shared_ptr<LuaPlugin>> LuaPlugin::Create(std::string name,
                                                             std::string version,
                                                             std::string script,
                                                             LuaPluginOptions options) {
  PluginEnv env{std::move(name), options.limits, std::move(options.log),
                options.stats ? std::move(options.stats) : std::make_shared<PluginStats>()};
  if (!env.log) env.log = StderrJsonLog();
  auto probe = ScriptVm::Load(env, script);
  if (!probe.ok()) return probe.status();
  return std::shared_ptr<LuaPlugin>(
      new LuaPlugin(std::move(env), std::move(version), std::move(script), **probe));
}

LuaPlugin::LuaPlugin(PluginEnv env, std::string version, std::string script,
                     const ScriptVm& probe)
    : env_(std::move(env)),
      version_(std::move(version)),
      script_(std::move(script)),
      request_body_(probe.request_body_mode()),
      response_body_(probe.response_body_mode()) {
  for (const Phase phase : kPhaseFunctions) phases_[Index(phase)] = probe.Has(phase);
}

bool LuaPlugin::handles_http() const {
  for (const Phase phase : {Phase::kRequest, Phase::kRequestBody, Phase::kResponse,
                            Phase::kResponseBody, Phase::kLog}) {
    if (phases_[Index(phase)]) return true;
  }
  return false;
}

bool LuaPlugin::handles_tcp() const {
  return phases_[Index(Phase::kTcpConnect)] || phases_[Index(Phase::kTcpData)] ||
         phases_[Index(Phase::kTcpClose)];
}

absl::StatusOr<ScriptVm*> LuaPlugin::ThreadVm() {
  const std::thread::id self = std::this_thread::get_id();
  {
    std::lock_guard lock(mu_);
    const auto found = vms_.find(self);
    if (found != vms_.end() && !found->second->broken()) return found->second.get();
  }
  // Loading runs the script's top level: not under the lock. Only this thread fills its slot.
  auto loaded = ScriptVm::Load(env_, script_);
  if (!loaded.ok()) return loaded.status();
  std::lock_guard lock(mu_);
  std::unique_ptr<ScriptVm>& slot = vms_[self];
  if (slot != nullptr) retired_.push_back(std::move(slot));
  slot = std::move(*loaded);
  return slot.get();
}

Verdict LuaPlugin::Fail(Phase phase, std::string_view error) {
  env_.stats->CountError();
  env_.log(LogLevel::kError, env_.name, std::string(PhaseName(phase)) + " failed: " + std::string(error));
  return Verdict::Respond(500, "plugin " + env_.name + " failed\n");
}

awaitable<Verdict> LuaPlugin::Step(Phase phase, Subject subject) {
  if (!phases_[Index(phase)]) co_return Verdict::Continue();
  std::string error;
  try {
    absl::StatusOr<ScriptVm*> vm = ThreadVm();
    if (!vm.ok()) co_return Fail(phase, std::string(vm.status().message()));
    Call call(env_, phase, subject);
    PhaseRun run(**vm, call);
    Outcome outcome = run.Start();
    // Bounded: http_call refuses more than limits.http_calls_per_call calls.
    while (outcome.kind == Outcome::Kind::kHttpCall) {
      // The pool comes with the context, as the resolver does, not from a thread_local:
      // the agent already hands each session its worker's pool and this step runs on that
      // worker, while a thread_local would outlive or mismatch the io_context of a plugin
      // run outside the agent (tests, tools), which has no pool and uses a connection per
      // call.
      http_client::Result result;
      if (absl::Status resolved = ResolveMeshName(subject, call.http_request); !resolved.ok()) {
        result.error = boost::asio::error::access_denied;
        result.message = std::string(resolved.message());
      } else {
        result = co_await http_client::Fetch(call.http_request, subject.pool);
      }
      outcome = run.Continue(result);
    }
    switch (outcome.kind) {
      case Outcome::Kind::kDone:
        if (phase == Phase::kTcpData) {
          if (auto data = run.ReturnedString()) *subject.body = std::move(*data);
        }
        co_return Verdict::Continue();
      case Outcome::Kind::kRespond:
        co_return Verdict{Verdict::Kind::kRespond, std::move(call.response)};
      case Outcome::Kind::kHttpCall:
      case Outcome::Kind::kFailed:
        error = std::move(outcome.error);
        break;
    }
  } catch (const std::exception& e) {
    // A LuaPanic (failing malloc) or bad_alloc; a panicked state is replaced on next use.
    error = e.what();
  }
  co_return Fail(phase, error);
}

void LuaPlugin::Notify(Phase phase, Subject subject) {
  if (!phases_[Index(phase)]) return;
  try {
    absl::StatusOr<ScriptVm*> vm = ThreadVm();
    if (!vm.ok()) {
      Fail(phase, std::string(vm.status().message()));
      return;
    }
    Call call(env_, phase, subject);
    PhaseRun run(**vm, call);
    const Outcome outcome = run.Start();
    if (outcome.kind == Outcome::Kind::kFailed) Fail(phase, outcome.error);
  } catch (const std::exception& e) {
    Fail(phase, e.what());
  }
}

awaitable<Verdict> LuaPlugin::OnRequestHeaders(HttpContext& ctx) {
  return Step(Phase::kRequest, Bind(ctx, ctx.ConfigFor(name())));
}

awaitable<Verdict> LuaPlugin::OnRequestBody(HttpContext& ctx, std::string& chunk, bool last) {
  return Step(Phase::kRequestBody, WithBody(Bind(ctx, ctx.ConfigFor(name())), chunk, last));
}

awaitable<Verdict> LuaPlugin::OnResponseHeaders(HttpContext& ctx) {
  if (!ctx.response) return Continue();
  return Step(Phase::kResponse, Bind(ctx, ctx.ConfigFor(name())));
}

awaitable<Verdict> LuaPlugin::OnResponseBody(HttpContext& ctx, std::string& chunk, bool last) {
  if (!ctx.response) return Continue();
  return Step(Phase::kResponseBody, WithBody(Bind(ctx, ctx.ConfigFor(name())), chunk, last));
}

bool LuaPlugin::has_request_header_step() const { return phases_[Index(Phase::kRequest)]; }

bool LuaPlugin::has_response_header_step() const { return phases_[Index(Phase::kResponse)]; }

void LuaPlugin::OnLog(const HttpContext& ctx) {
  Notify(Phase::kLog, Observe(ctx, ctx.ConfigFor(name())));
}

awaitable<Verdict> LuaPlugin::OnConnect(TcpContext& ctx) {
  return Step(Phase::kTcpConnect, Bind(ctx, ctx.ConfigFor(name())));
}

awaitable<Verdict> LuaPlugin::OnData(TcpContext& ctx, Direction direction, std::string& data) {
  Subject subject = WithBody(Bind(ctx, ctx.ConfigFor(name())), data, false);
  subject.direction = direction;
  return Step(Phase::kTcpData, subject);
}

void LuaPlugin::OnClose(const TcpContext& ctx) {
  Notify(Phase::kTcpClose, Observe(ctx, ctx.ConfigFor(name())));
}

}  // namespace meshplug::plugins::lua
