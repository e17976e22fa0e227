#include "agent/xds/xds_client.h"

#include <algorithm>
#include <random>

#include "agent/xds/ads_stream.h"
#include "agent/xds/protocol.h"
#include "agent/xds/saved_config.h"
#include "common/agent_id.h"
#include "common/backoff.h"
#include "common/log.h"
#include "common/strings.h"

namespace meshplug::agent::xds {

using std::chrono::milliseconds;

const char* ToString(XdsConnectionState state) {
  switch (state) {
    case XdsConnectionState::kIdle:
      return "idle";
    case XdsConnectionState::kConnecting:
      return "connecting";
    case XdsConnectionState::kConnected:
      return "connected";
    case XdsConnectionState::kBackoff:
      return "backoff";
    case XdsConnectionState::kStopped:
      return "stopped";
  }
  return "unknown";
}

namespace {

std::string AgentIdOf(const envoy::config::core::v3::Node& node) {
  auto it = node.metadata().fields().find("namespace");
  return AgentId(it == node.metadata().fields().end() ? "" : it->second.string_value(), node.id());
}

std::string Ms(std::chrono::nanoseconds d) {
  return std::to_string(std::chrono::duration_cast<milliseconds>(d).count());
}

}  // namespace

XdsClient::XdsClient(XdsClientOptions options, ApplyFn apply, Stats* stats)
    : options_(std::move(options)),
      apply_(std::move(apply)),
      stats_(stats),
      agent_id_(AgentIdOf(options_.node)),
      assembler_(options_.timing),
      backoff_(options_.backoff_base, options_.backoff_max, std::random_device{}()) {}

XdsClient::~XdsClient() { Stop(); }

void XdsClient::Start() {
  if (thread_.joinable()) return;
  started_at_ = Clock::now();
  if (!options_.cache_path.empty() && options_.use_cache_at_start) {
    auto cached = LoadSavedConfig(options_.cache_path);
    if (!cached.ok()) {
      if (cached.status().code() != absl::StatusCode::kNotFound) {
        log::Warn("saved snapshot not usable",
                  {{"path", options_.cache_path}, {"error", std::string(cached.status().message())}});
      }
    } else if (cached->agent != agent_id_) {
      log::Warn("saved snapshot is another agent's; ignored",
                {{"path", options_.cache_path}, {"saved_by", cached->agent}, {"agent", agent_id_}});
    } else {
      log::Info("saved snapshot found",
                {{"path", options_.cache_path}, {"version", cached->resources.Assemble().version()}});
      cache_ = std::move(cached->resources);
    }
  }
  SetState(XdsConnectionState::kConnecting);
  thread_ = std::thread([this] { Run(); });
}

void XdsClient::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    io_.stop();
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

XdsClientStatus XdsClient::status() const {
  std::lock_guard lock(mu_);
  return status_;
}

bool XdsClient::WaitFor(const std::function<bool(const XdsClientStatus&)>& pred, milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return pred(status_); });
}

void XdsClient::UpdateStatus(const std::function<void(XdsClientStatus&)>& change) {
  {
    std::lock_guard lock(mu_);
    change(status_);
  }
  cv_.notify_all();
}

void XdsClient::SetState(XdsConnectionState state) {
  UpdateStatus([&](XdsClientStatus& s) { s.state = state; });
  if (!stats_) return;
  stats_->SetGauge("meshplug_agent_xds_connected", {}, state == XdsConnectionState::kConnected ? 1 : 0);
  for (auto s : {XdsConnectionState::kConnecting, XdsConnectionState::kConnected, XdsConnectionState::kBackoff}) {
    stats_->SetGauge("meshplug_agent_xds_connection_state", {{"state", ToString(s)}}, s == state ? 1 : 0);
  }
}

void XdsClient::Run() {
  uint64_t failures = 0;  // attempts in a row that did not lead to a healthy stream
  while (!stopping()) {
    const bool healthy = Attempt();
    if (stopping()) break;
    // Whatever ended the attempt, the next one goes to the next replica (if there are
    // several): the one just used may be gone.
    servers_->Failed(server_);
    MaybeUseCache(Clock::now(), /*attempt_failed=*/true);
    if (healthy) backoff_.Reset(), failures = 0;
    ++failures;
    const milliseconds delay = backoff_.Next();
    SetState(XdsConnectionState::kBackoff);
    std::string why;
    {
      std::lock_guard lock(mu_);
      why = status_.last_stream_error;
    }
    // One line per attempt; after the first few, only every tenth while it stays down.
    const auto level = failures <= 3 || failures % 10 == 0 ? log::Level::kWarn : log::Level::kDebug;
    log::Write(level, "xDS reconnecting",
               {{"server", server_},
                {"in_ms", std::to_string(delay.count())},
                {"failures", std::to_string(failures)},
                {"last_error", why}});
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, delay, [this] { return stopping(); });
  }
  SetState(XdsConnectionState::kStopped);
}

bool XdsClient::Attempt() {
  server_ = servers_->current();
  SetState(XdsConnectionState::kConnecting);
  // Stop sets stopping_ before it stops io_: either this sees it, or the loop is stopped.
  io_.restart();
  if (stopping()) return false;
  return options_.protocol == XdsProtocol::kDelta ? RunStream<DeltaOps>() : RunStream<SotwOps>();
}

std::unique_ptr<GrpcCall> XdsClient::Connect(std::string_view method) {
  absl::StatusOr<ControlPlaneCredentials> credentials = ControlPlaneCredentials{};
  if (options_.credentials) credentials = options_.credentials();
  if (!credentials.ok()) {
    UpdateStatus([&](XdsClientStatus& s) { s.last_stream_error = std::string(credentials.status().message()); });
    return nullptr;
  }
  GrpcCall::Options call_options;
  call_options.connect_timeout = options_.connect_timeout;
  call_options.keepalive = options_.keepalive;
  // The coroutine uses these only while this function runs io_: once stopping, it is
  // never resumed.
  std::unique_ptr<GrpcCall> call;
  absl::Status status;
  bool done = false;
  boost::asio::co_spawn(
      io_,
      [&]() -> boost::asio::awaitable<void> {
        call = co_await GrpcCall::Start(server_, *credentials, method, call_options, status);
        done = true;
      },
      boost::asio::detached);
  // Bounded by the connect timeout; every turn waits up to 100 ms for the saved snapshot.
  while (!done && !io_.stopped()) {
    io_.run_one_for(milliseconds(100));
    MaybeUseCache(Clock::now(), false);
  }
  if (!done) return nullptr;  // stopping
  if (!call) UpdateStatus([&](XdsClientStatus& s) { s.last_stream_error = std::string(status.message()); });
  return call;
}

template <typename Proto>
bool XdsClient::RunStream() {
  std::unique_ptr<GrpcCall> call = Connect(Proto::kMethod);
  if (!call) return false;
  AdsStream<Proto> stream(io_, std::move(call));
  const auto began = Clock::now();
  SetState(XdsConnectionState::kConnected);
  UpdateStatus([](XdsClientStatus& s) { ++s.connects; });
  if (stats_) stats_->Count("meshplug_agent_xds_streams_total", {{"protocol", Proto::kName}});
  log::Info("xDS stream open", {{"server", server_},
                                {"protocol", Proto::kName},
                                {"agent", agent_id_},
                                {"resume_resources", std::to_string(assembler_.running().size())}});

  // Resume from what the agent runs: the control plane sends only what differs.
  assembler_.StartStream();
  bool first = true;
  for (const std::string& type : xds_types::TypeUrls()) {
    stream.Send(Proto::Subscribe(type, first ? &options_.node : nullptr, assembler_.running()));
    first = false;
  }
  auto answer = [&](const std::vector<Answer>& answers) {
    Count(answers);
    for (const Answer& a : answers) stream.Send(Proto::AnswerRequest(a));
  };

  bool got_response = false;
  typename Proto::Resp incoming;
  for (;;) {
    // The next timer: the assembler's (an update settling or timing out) or the saved
    // snapshot's deadline. Without one, wait for events (Stop stops the loop).
    auto deadline = Clock::now() + std::chrono::hours(1);
    if (auto due = assembler_.NextDeadline()) deadline = std::min(deadline, *due);
    if (auto cache_at = CacheDeadline()) deadline = std::min(deadline, *cache_at);
    const auto event = stream.Next(deadline, incoming);
    if (event == AdsStream<Proto>::Event::kClosed) break;
    const auto now = Clock::now();
    if (event == AdsStream<Proto>::Event::kResponse) {
      got_response = true;
      const std::string& type = Proto::Type(incoming);
      UpdateStatus([](XdsClientStatus& s) { ++s.responses; });
      if (stats_) stats_->Count("meshplug_agent_xds_responses_total", {{"type", ShortType(type)}});
      log::Debug("xDS response", {{"type", type},
                                  {"version", Proto::Version(incoming)},
                                  {"nonce", Proto::Nonce(incoming)},
                                  {"resources", std::to_string(Proto::Count(incoming))},
                                  {"removed", std::to_string(Proto::Removed(incoming))}});
      auto rejected = assembler_.OnResponse(type, Proto::Nonce(incoming), Proto::Version(incoming),
                                            [&](ResourceSet& into) { return Proto::Merge(incoming, into); }, now);
      if (rejected) answer({*rejected});
      continue;
    }
    UpdateAssembler::Due due = assembler_.Poll(now);
    if (due.update) {
      answer(assembler_.Applied(*due.update, ApplyUpdate(*due.update, /*from_cache=*/false)));
    } else if (due.confirmed) {
      save_pending_ = true;
      UpdateStatus([](XdsClientStatus& s) { s.from_cache = false; });
      if (stats_) stats_->SetGauge("meshplug_agent_snapshot_from_cache", {}, 0);
    }
    answer(due.answers);
    MaybeUseCache(now, false);
    SaveIfPending();
  }
  SaveIfPending();

  const absl::Status final_status = stream.status();
  const auto lived = Clock::now() - began;
  const std::string why = final_status.ok() ? "stream closed by the control plane"
                                            : Cat(static_cast<int>(final_status.code()), " ", final_status.message());
  UpdateStatus([&](XdsClientStatus& s) {
    ++s.disconnects;
    s.last_stream_error = why;
  });
  if (stats_) stats_->Count("meshplug_agent_xds_stream_ends_total", {});
  if (!stopping()) {
    const bool refused = final_status.code() == absl::StatusCode::kFailedPrecondition ||
                         final_status.code() == absl::StatusCode::kInvalidArgument;
    log::Write(refused ? log::Level::kError : log::Level::kWarn, "xDS stream ended",
               {{"server", server_}, {"status", why}, {"lived_ms", Ms(lived)}});
  }
  return got_response || lived >= options_.backoff_max;
}

void XdsClient::Count(const std::vector<Answer>& answers) {
  for (const Answer& a : answers) {
    UpdateStatus([&](XdsClientStatus& s) {
      ++(a.error ? s.nacks : s.acks);
      if (a.error) s.last_error = *a.error;
    });
    if (stats_) {
      stats_->Count(a.error ? "meshplug_agent_xds_nacks_total" : "meshplug_agent_xds_acks_total",
                    {{"type", ShortType(a.type_url)}});
    }
  }
}

std::optional<Clock::time_point> XdsClient::CacheDeadline() const {
  if (assembler_.running_any() || !cache_ || !options_.use_cache_at_start) return std::nullopt;
  return started_at_ + options_.initial_fetch_timeout;
}

void XdsClient::MaybeUseCache(Clock::time_point now, bool attempt_failed) {
  auto deadline = CacheDeadline();
  if (!deadline || (!attempt_failed && now < *deadline)) return;
  Update update{std::move(*cache_), {}, now};
  cache_.reset();
  update.snapshot = update.resources.Assemble();
  log::Warn("no configuration from the control plane yet; serving the saved snapshot",
            {{"path", options_.cache_path}, {"reason", attempt_failed ? "control plane unreachable" : "timed out"}});
  if (absl::Status st = ApplyUpdate(update, /*from_cache=*/true).status(); !st.ok()) {
    log::Error("the saved snapshot does not build", {{"path", options_.cache_path}, {"error", std::string(st.message())}});
    return;
  }
  assembler_.Adopt(update.resources, update.snapshot.version());
}

absl::StatusOr<std::vector<std::string>> XdsClient::ApplyUpdate(const Update& update, bool from_cache) {
  const std::string& version = update.snapshot.version();
  absl::StatusOr<std::vector<std::string>> isolated = apply_(update.snapshot);
  if (!isolated.ok()) return isolated;
  for (const std::string& problem : *isolated) log::Error("plugin isolated", {{"version", version}, {"problem", problem}});
  const auto latency = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - update.first_response);
  cache_.reset();
  if (!from_cache) save_pending_ = true;
  UpdateStatus([&](XdsClientStatus& s) {
    s.active_version = version;
    s.from_cache = from_cache;
    ++s.applies;
    s.last_update_latency = latency;
  });
  if (stats_) {
    stats_->Count("meshplug_agent_xds_updates_applied_total", {{"source", from_cache ? "cache" : "xds"}});
    stats_->SetGauge("meshplug_agent_snapshot_from_cache", {}, from_cache ? 1 : 0);
    if (!from_cache) {
      stats_->Observe("meshplug_agent_xds_update_seconds", {}, static_cast<double>(latency.count()) / 1e6);
    }
  }
  log::Info("configuration applied", {{"version", version},
                                      {"source", from_cache ? "saved snapshot" : "xds"},
                                      {"latency_us", std::to_string(latency.count())}});
  return isolated;
}

void XdsClient::SaveIfPending() {
  if (!save_pending_ || options_.cache_path.empty()) return;
  save_pending_ = false;
  if (auto st = SaveConfig(options_.cache_path, agent_id_, assembler_.running(), status().active_version);
      !st.ok()) {
    log::Warn("cannot save the snapshot", {{"path", options_.cache_path}, {"error", std::string(st.message())}});
  }
}

}  // namespace meshplug::agent::xds
