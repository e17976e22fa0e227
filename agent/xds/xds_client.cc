#include "agent/xds/xds_client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cmath>
#include <deque>

#include "agent/xds/saved_config.h"
#include "common/agent_id.h"
#include "common/log.h"
#include "common/strings.h"
#include "envoy/service/discovery/v3/ads.grpc.pb.h"

namespace meshplug::agent::xds {

namespace discovery = envoy::service::discovery::v3;
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

// NACK code: the configuration is invalid for this agent.
constexpr int kInvalidArgument = 3;

std::string AgentIdOf(const envoy::config::core::v3::Node& node) {
  auto it = node.metadata().fields().find("namespace");
  return AgentId(it == node.metadata().fields().end() ? "" : it->second.string_value(), node.id());
}

std::string Ms(std::chrono::nanoseconds d) {
  return std::to_string(std::chrono::duration_cast<milliseconds>(d).count());
}

const char* ChannelStateName(grpc_connectivity_state s) {
  switch (s) {
    case GRPC_CHANNEL_IDLE:
      return "idle";
    case GRPC_CHANNEL_CONNECTING:
      return "connecting";
    case GRPC_CHANNEL_READY:
      return "ready";
    case GRPC_CHANNEL_TRANSIENT_FAILURE:
      return "transient failure";
    case GRPC_CHANNEL_SHUTDOWN:
      return "shutdown";
  }
  return "unknown";
}

// A NACK carries the reason in error_detail; an ACK has none.
template <typename Req>
void SetNackReason(Req& r, const std::optional<std::string>& error) {
  if (!error) return;
  r.mutable_error_detail()->set_code(kInvalidArgument);
  r.mutable_error_detail()->set_message(*error);
}

// Incremental xDS: resources by name and version, removals by name.
struct DeltaOps {
  using Req = discovery::DeltaDiscoveryRequest;
  using Resp = discovery::DeltaDiscoveryResponse;
  static constexpr const char* kName = "delta";

  static auto Prepare(discovery::AggregatedDiscoveryService::Stub& stub, grpc::ClientContext* ctx,
                      grpc::CompletionQueue* cq) {
    return stub.PrepareAsyncDeltaAggregatedResources(ctx, cq);
  }
  static Req Subscribe(const std::string& type, const envoy::config::core::v3::Node* node,
                       const xds::ResourceSet& have) {
    Req r;
    if (node) *r.mutable_node() = *node;
    r.set_type_url(type);
    r.add_resource_names_subscribe("*");
    for (const auto& [name, version] : have.Versions(type)) (*r.mutable_initial_resource_versions())[name] = version;
    return r;
  }
  static Req Answer(const std::string& type, const std::string& nonce, const std::string& /*version*/,
                    const std::string& /*accepted*/, const std::optional<std::string>& error) {
    Req r;
    r.set_type_url(type);
    r.set_response_nonce(nonce);
    SetNackReason(r, error);
    return r;
  }
  static const std::string& Type(const Resp& r) { return r.type_url(); }
  static const std::string& Nonce(const Resp& r) { return r.nonce(); }
  static const std::string& Version(const Resp& r) { return r.system_version_info(); }
  static size_t Count(const Resp& r) { return r.resources_size(); }
  static size_t Removed(const Resp& r) { return r.removed_resources_size() + r.removed_resource_names_size(); }

  // All or nothing: a resource that does not decode rejects the whole response.
  static absl::Status Merge(const Resp& resp, xds::ResourceSet& into) {
    std::vector<std::pair<std::string, xds::ResourceSet::Entry>> puts;
    for (const auto& r : resp.resources()) {
      if (r.name().empty())
        return absl::InvalidArgumentError(Cat("a ", xds::ShortType(resp.type_url()), " resource has no name"));
      auto msg = xds::ResourceSet::Decode(resp.type_url(), r.resource());
      if (!msg.ok()) return absl::InvalidArgumentError(Cat(r.name(), ": ", std::string(msg.status().message())));
      puts.emplace_back(r.name(), xds::ResourceSet::Entry{r.version(), *std::move(msg)});
    }
    for (auto& [name, entry] : puts) into.Put(resp.type_url(), name, std::move(entry));
    for (const auto& name : resp.removed_resources()) into.Remove(resp.type_url(), name);
    for (const auto& name : resp.removed_resource_names()) into.Remove(resp.type_url(), name.name());
    into.SetTypeVersion(resp.type_url(), resp.system_version_info());
    return absl::OkStatus();
  }
};

// State of the world: every response holds all resources of its type.
struct SotwOps {
  using Req = discovery::DiscoveryRequest;
  using Resp = discovery::DiscoveryResponse;
  static constexpr const char* kName = "sotw";

  static auto Prepare(discovery::AggregatedDiscoveryService::Stub& stub, grpc::ClientContext* ctx,
                      grpc::CompletionQueue* cq) {
    return stub.PrepareAsyncStreamAggregatedResources(ctx, cq);
  }
  static Req Subscribe(const std::string& type, const envoy::config::core::v3::Node* node,
                       const xds::ResourceSet& have) {
    Req r;
    if (node) *r.mutable_node() = *node;
    r.set_type_url(type);
    r.add_resource_names("*");
    r.set_version_info(have.TypeVersion(type));
    return r;
  }
  // An ACK carries the version it accepts; a NACK the version still in use.
  static Req Answer(const std::string& type, const std::string& nonce, const std::string& version,
                    const std::string& accepted, const std::optional<std::string>& error) {
    Req r;
    r.set_type_url(type);
    r.add_resource_names("*");
    r.set_response_nonce(nonce);
    r.set_version_info(error ? accepted : version);
    SetNackReason(r, error);
    return r;
  }
  static const std::string& Type(const Resp& r) { return r.type_url(); }
  static const std::string& Nonce(const Resp& r) { return r.nonce(); }
  static const std::string& Version(const Resp& r) { return r.version_info(); }
  static size_t Count(const Resp& r) { return r.resources_size(); }
  static size_t Removed(const Resp&) { return 0; }

  static absl::Status Merge(const Resp& resp, xds::ResourceSet& into) {
    xds::ResourceSet::Named named;
    for (const auto& any : resp.resources()) {
      auto msg = xds::ResourceSet::Decode(resp.type_url(), any);
      if (!msg.ok()) return msg.status();
      std::string name = ::meshplug::xds_types::ResourceName(**msg);
      if (name.empty())
        return absl::InvalidArgumentError(Cat("a ", xds::ShortType(resp.type_url()), " resource has no name"));
      if (named.count(name)) {
        return absl::InvalidArgumentError(
            Cat("two ", xds::ShortType(resp.type_url()), " resources are named \"", name, "\""));
      }
      named[name] = xds::ResourceSet::Entry{"", *std::move(msg)};
    }
    into.ReplaceType(resp.type_url(), std::move(named));
    into.SetTypeVersion(resp.type_url(), resp.version_info());
    return absl::OkStatus();
  }
};

bool KnownType(const std::string& type) {
  const auto& types = xds_types::TypeUrls();
  return std::find(types.begin(), types.end(), type) != types.end();
}

// gRPC takes system_clock deadlines; our timers are steady.
std::chrono::system_clock::time_point ToSystem(std::chrono::steady_clock::time_point t) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(t - std::chrono::steady_clock::now());
}

enum Tag : intptr_t { kStart = 1, kRead, kWrite, kFinish };
void* ToTag(Tag t) { return reinterpret_cast<void*>(t); }

}  // namespace

XdsClient::XdsClient(XdsClientOptions options, ApplyFn apply, Stats* stats)
    : options_(std::move(options)),
      apply_(std::move(apply)),
      stats_(stats),
      agent_id_(AgentIdOf(options_.node)),
      rng_(std::random_device{}()) {}

XdsClient::~XdsClient() { Stop(); }

void XdsClient::Start() {
  if (thread_.joinable()) return;
  started_at_ = Clock::now();
  if (!options_.cache_path.empty() && options_.use_cache_at_start) {
    auto cached = LoadSnapshotCache(options_.cache_path);
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
    if (context_) context_->TryCancel();
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

void XdsClient::Update(const std::function<void(XdsClientStatus&)>& change) {
  {
    std::lock_guard lock(mu_);
    change(status_);
  }
  cv_.notify_all();
}

void XdsClient::SetState(XdsConnectionState state) {
  Update([&](XdsClientStatus& s) { s.state = state; });
  if (!stats_) return;
  stats_->SetGauge("meshplug_agent_xds_connected", {}, state == XdsConnectionState::kConnected ? 1 : 0);
  for (auto s : {XdsConnectionState::kConnecting, XdsConnectionState::kConnected, XdsConnectionState::kBackoff}) {
    stats_->SetGauge("meshplug_agent_xds_connection_state", {{"state", ToString(s)}}, s == state ? 1 : 0);
  }
}

std::shared_ptr<grpc::Channel> XdsClient::MakeChannel() const {
  grpc::ChannelArguments args;
  // A channel of our own per attempt, so our backoff decides when to reconnect rather
  // than a subchannel shared with (and backed off by) earlier channels.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, static_cast<int>(options_.keepalive.count()));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20000);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  args.SetInt(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, 64 * 1024 * 1024);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, static_cast<int>(options_.backoff_base.count()));
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, static_cast<int>(options_.backoff_base.count()));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, static_cast<int>(options_.backoff_max.count()));
  return grpc::CreateCustomChannel(options_.server_address, grpc::InsecureChannelCredentials(), args);
}

milliseconds BackoffDelay(int attempt, milliseconds base, milliseconds max, double unit) {
  const double cap = std::min(static_cast<double>(max.count()),
                              static_cast<double>(base.count()) * std::ldexp(1.0, std::clamp(attempt, 0, 62)));
  return milliseconds(std::max<int64_t>(1, static_cast<int64_t>(cap * (0.5 + 0.5 * std::clamp(unit, 0.0, 1.0)))));
}

milliseconds XdsClient::NextBackoff() {
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const milliseconds delay = BackoffDelay(attempt_, options_.backoff_base, options_.backoff_max, unit(rng_));
  attempt_ = std::min(attempt_ + 1, 62);
  return delay;
}

void XdsClient::Run() {
  uint64_t failures = 0;  // attempts in a row that did not lead to a healthy stream
  while (!stopping()) {
    const bool healthy = Attempt();
    if (stopping()) break;
    MaybeUseCache(Clock::now(), /*attempt_failed=*/true);
    if (healthy) attempt_ = 0, failures = 0;
    ++failures;
    const milliseconds delay = NextBackoff();
    SetState(XdsConnectionState::kBackoff);
    std::string why;
    {
      std::lock_guard lock(mu_);
      why = status_.last_stream_error;
    }
    // One line per attempt; after the first few, only every tenth while it stays down.
    const auto level = failures <= 3 || failures % 10 == 0 ? log::Level::kWarn : log::Level::kDebug;
    log::Write(level, "xDS reconnecting",
               {{"server", options_.server_address},
                {"in_ms", std::to_string(delay.count())},
                {"failures", std::to_string(failures)},
                {"last_error", why}});
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, delay, [this] { return stopping(); });
  }
  SetState(XdsConnectionState::kStopped);
}

bool XdsClient::Attempt() {
  SetState(XdsConnectionState::kConnecting);
  std::shared_ptr<grpc::Channel> channel = MakeChannel();
  if (!WaitReady(channel)) return false;
  return options_.protocol == XdsProtocol::kDelta ? RunStream<DeltaOps>(channel) : RunStream<SotwOps>(channel);
}

bool XdsClient::WaitReady(const std::shared_ptr<grpc::Channel>& channel) {
  const auto deadline = Clock::now() + options_.connect_timeout;
  grpc_connectivity_state state = channel->GetState(/*try_to_connect=*/true);
  // Bounded: every turn waits up to 100 ms and the loop ends at the deadline.
  while (state != GRPC_CHANNEL_READY) {
    const auto now = Clock::now();
    MaybeUseCache(now, false);
    if (stopping()) return false;
    if (state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_SHUTDOWN || now >= deadline) {
      const std::string why = Cat("cannot connect to ", options_.server_address, " (", ChannelStateName(state),
                                  now >= deadline ? ", timed out" : "", ")");
      Update([&](XdsClientStatus& s) { s.last_stream_error = why; });
      return false;
    }
    channel->WaitForStateChange(state, ToSystem(std::min(deadline, now + milliseconds(100))));
    state = channel->GetState(true);
  }
  return true;
}

template <typename Proto>
bool XdsClient::RunStream(const std::shared_ptr<grpc::Channel>& channel) {
  using Req = typename Proto::Req;
  using Resp = typename Proto::Resp;
  auto stub = discovery::AggregatedDiscoveryService::NewStub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  auto rw = Proto::Prepare(*stub, &ctx, &cq);
  rw->StartCall(ToTag(kStart));
  int outstanding = 1;
  {
    std::lock_guard lock(mu_);
    if (stopping_) ctx.TryCancel();
    context_ = &ctx;
  }
  const auto began = Clock::now();
  SetState(XdsConnectionState::kConnected);
  Update([](XdsClientStatus& s) { ++s.connects; });
  if (stats_) stats_->Count("meshplug_agent_xds_streams_total", {{"protocol", Proto::kName}});
  log::Info("xDS stream open", {{"server", options_.server_address},
                                {"protocol", Proto::kName},
                                {"agent", agent_id_},
                                {"resume_resources", std::to_string(applied_.size())}});

  // Resume from what the agent runs: the control plane sends only what differs.
  received_ = applied_;
  tracks_.clear();
  batch_first_.reset();
  batch_last_.reset();
  incomplete_since_.reset();
  warming_until_.reset();
  hold_ = false;
  last_missing_.clear();

  std::deque<Req> outbox;
  bool first = true;
  for (const std::string& type : xds_types::TypeUrls()) {
    outbox.push_back(Proto::Subscribe(type, first ? &options_.node : nullptr, applied_));
    first = false;
  }
  respond_ = [&](const std::string& type, const std::optional<std::string>& error) {
    const TypeTrack& t = tracks_[type];
    outbox.push_back(Proto::Answer(type, t.nonce, t.version, applied_.TypeVersion(type), error));
    Update([&](XdsClientStatus& s) {
      ++(error ? s.nacks : s.acks);
      if (error) s.last_error = *error;
    });
    if (stats_) {
      stats_->Count(error ? "meshplug_agent_xds_nacks_total" : "meshplug_agent_xds_acks_total",
                    {{"type", xds::ShortType(type)}});
    }
  };

  bool started = false, writing = false, write_failed = false, read_failed = false;
  bool finishing = false, finished = false, got_response = false;
  Resp incoming;
  grpc::Status final_status;
  auto flush = [&] {
    if (!started || writing || write_failed || finishing || outbox.empty()) return;
    rw->Write(outbox.front(), ToTag(kWrite));
    writing = true;
    ++outstanding;
  };
  auto start_read = [&] {
    rw->Read(&incoming, ToTag(kRead));
    ++outstanding;
  };

  while (!(finished && outstanding == 0)) {
    // The next timer: a batch settling, an incomplete batch timing out, the saved
    // snapshot's deadline. Without one, wait for events (Stop cancels the call).
    auto deadline = Clock::now() + std::chrono::hours(1);
    if (auto settle_at = SettleAt()) deadline = std::min(deadline, *settle_at);
    if (incomplete_since_) deadline = std::min(deadline, *incomplete_since_ + options_.incomplete_timeout);
    if (auto cache_at = CacheDeadline()) deadline = std::min(deadline, *cache_at);

    void* tag = nullptr;
    bool ok = false;
    const auto next = cq.AsyncNext(&tag, &ok, ToSystem(deadline));
    if (next == grpc::CompletionQueue::SHUTDOWN) break;
    if (next == grpc::CompletionQueue::TIMEOUT) {
      const auto now = Clock::now();
      if (!finishing) {
        if (auto settle_at = SettleAt(); settle_at && now >= *settle_at) Settle(now);
        if (incomplete_since_ && now >= *incomplete_since_ + options_.incomplete_timeout) NackPendingIncomplete();
      }
      MaybeUseCache(now, false);
      flush();
      SaveIfPending();
      continue;
    }
    --outstanding;
    switch (static_cast<Tag>(reinterpret_cast<intptr_t>(tag))) {
      case kStart:
        if (!ok) {
          read_failed = true;
          break;
        }
        started = true;
        start_read();
        break;
      case kRead: {
        if (!ok) {
          read_failed = true;
          break;
        }
        got_response = true;
        const auto now = Clock::now();
        const std::string type = Proto::Type(incoming);
        Update([](XdsClientStatus& s) { ++s.responses; });
        if (stats_) stats_->Count("meshplug_agent_xds_responses_total", {{"type", xds::ShortType(type)}});
        log::Debug("xDS response", {{"type", type},
                                    {"version", Proto::Version(incoming)},
                                    {"nonce", Proto::Nonce(incoming)},
                                    {"resources", std::to_string(Proto::Count(incoming))},
                                    {"removed", std::to_string(Proto::Removed(incoming))}});
        TypeTrack& t = tracks_[type];
        t.nonce = Proto::Nonce(incoming);
        t.version = Proto::Version(incoming);
        absl::Status merged = KnownType(type) ? Proto::Merge(incoming, received_)
                                              : absl::InvalidArgumentError(Cat("unknown resource type ", type));
        if (!merged.ok()) {
          t.state = TypeTrack::State::kRejected;
          const std::string error = Cat(xds::ShortType(type), " ", t.version, ": ", std::string(merged.message()));
          log::Warn("xDS response rejected", {{"type", type}, {"error", error}});
          respond_(type, error);
        } else {
          t.state = TypeTrack::State::kPending;
          if (!batch_first_) batch_first_ = now;
          batch_last_ = now;
          incomplete_since_.reset();  // something new: check completeness again
          warming_until_.reset();
          hold_ = false;
        }
        start_read();
        break;
      }
      case kWrite:
        writing = false;
        if (ok) {
          outbox.pop_front();
        } else {
          write_failed = true;  // the read fails too and ends the stream
        }
        break;
      case kFinish:
        finished = true;
        break;
    }
    if (read_failed && !finishing) {
      finishing = true;
      rw->Finish(&final_status, ToTag(kFinish));
      ++outstanding;
    }
    flush();
  }
  {
    std::lock_guard lock(mu_);
    context_ = nullptr;
  }
  respond_ = nullptr;
  cq.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (cq.Next(&tag, &ok)) {
  }
  SaveIfPending();

  const auto lived = Clock::now() - began;
  const std::string why = final_status.ok() ? "stream closed by the control plane"
                                            : Cat(final_status.error_code(), " ", final_status.error_message());
  Update([&](XdsClientStatus& s) {
    ++s.disconnects;
    s.last_stream_error = why;
  });
  if (stats_) stats_->Count("meshplug_agent_xds_stream_ends_total", {});
  if (!stopping()) {
    const bool refused = final_status.error_code() == grpc::StatusCode::FAILED_PRECONDITION ||
                         final_status.error_code() == grpc::StatusCode::INVALID_ARGUMENT;
    log::Write(refused ? log::Level::kError : log::Level::kWarn, "xDS stream ended",
               {{"server", options_.server_address}, {"status", why}, {"lived_ms", Ms(lived)}});
  }
  return got_response || lived >= options_.backoff_max;
}

void XdsClient::Settle(Clock::time_point now) {
  using State = TypeTrack::State;
  if (std::vector<std::string> missing = received_.Missing(/*endpoints=*/false); !missing.empty()) {
    incomplete_since_ = now;
    if (const std::string text = Join(missing, "; "); text != last_missing_) {
      log::Info("xDS waiting for resources", {{"missing", text}});
      last_missing_ = text;
    }
    return;
  }
  // Clusters whose Endpoints have not arrived wait up to endpoints_warming, unless the
  // agent already runs them without endpoints (known empty: nothing more is coming).
  std::vector<std::string> warming = received_.ClustersWithoutEndpoints();
  std::erase_if(warming, [&](const std::string& cluster) {
    return applied_any_ && applied_.Of(xds::UrlOf<v1::Cluster>()).count(cluster) &&
           !applied_.Of(xds::UrlOf<v1::Endpoints>()).count(cluster);
  });
  if (!warming.empty()) {
    const std::string text = Join(warming, ", ");
    if (now < *batch_first_ + options_.endpoints_warming) {
      warming_until_ = *batch_first_ + options_.endpoints_warming;
      if (text != last_missing_) {
        log::Info("xDS waiting for the endpoints of new clusters", {{"clusters", text}});
        last_missing_ = text;
      }
      return;
    }
    log::Warn("xDS applying with clusters that have no endpoints", {{"clusters", text}});
  }
  warming_until_.reset();
  last_missing_.clear();
  if (!hold_ && now < *batch_first_ + options_.settle_max) {
    if (std::vector<std::string> extra = received_.Unreferenced(); !extra.empty()) {
      log::Debug("xDS update holds unreferenced resources; waiting for the rest of the push",
                 {{"unreferenced", Join(extra, "; ")}});
      hold_ = true;
      return;
    }
  }
  hold_ = false;
  const Clock::time_point received_at = *batch_first_;
  batch_first_.reset();
  batch_last_.reset();
  v1::Snapshot snapshot = received_.Assemble();
  const std::string version = snapshot.version();
  std::string error;
  bool ok = true;
  bool same = false;
  {
    std::lock_guard lock(mu_);
    same = applied_any_ && status_.active_version == version;
  }
  if (same) {
    // The control plane confirms what runs (e.g. the saved snapshot); versions may have moved.
    applied_ = received_;
    save_pending_ = true;
    Update([](XdsClientStatus& s) { s.from_cache = false; });
    if (stats_) stats_->SetGauge("meshplug_agent_snapshot_from_cache", {}, 0);
  } else {
    ok = Apply(received_, std::move(snapshot), received_at, /*from_cache=*/false, &error);
  }
  for (auto& [type, t] : tracks_) {
    if (ok && (t.state == State::kPending || t.state == State::kNacked)) {
      respond_(type, std::nullopt);
      t.state = State::kAcked;
    } else if (!ok && t.state == State::kPending) {
      respond_(type, error);
      t.state = State::kNacked;
    }
  }
  if (!ok) {
    log::Warn("xDS update rejected; the previous configuration keeps running",
              {{"version", version}, {"error", error}});
  }
}

void XdsClient::NackPendingIncomplete() {
  const std::string error = Cat("incomplete configuration, still missing: ", last_missing_);
  log::Warn("xDS update incomplete; NACKed", {{"missing", last_missing_}});
  for (auto& [type, t] : tracks_) {
    if (t.state != TypeTrack::State::kPending) continue;
    respond_(type, error);
    t.state = TypeTrack::State::kNacked;
  }
  incomplete_since_.reset();
  batch_first_.reset();
  batch_last_.reset();
  hold_ = false;
}

std::optional<XdsClient::Clock::time_point> XdsClient::SettleAt() const {
  if (!batch_first_) return std::nullopt;
  if (warming_until_) return *warming_until_;
  if (incomplete_since_) return std::nullopt;
  if (hold_) return *batch_first_ + options_.settle_max;
  return std::min(*batch_last_ + options_.settle, *batch_first_ + options_.settle_max);
}

std::optional<XdsClient::Clock::time_point> XdsClient::CacheDeadline() const {
  if (applied_any_ || !cache_ || !options_.use_cache_at_start) return std::nullopt;
  return started_at_ + options_.initial_fetch_timeout;
}

void XdsClient::MaybeUseCache(Clock::time_point now, bool attempt_failed) {
  auto deadline = CacheDeadline();
  if (!deadline || (!attempt_failed && now < *deadline)) return;
  xds::ResourceSet cached = std::move(*cache_);
  cache_.reset();
  log::Warn("no configuration from the control plane yet; serving the saved snapshot",
            {{"path", options_.cache_path}, {"reason", attempt_failed ? "control plane unreachable" : "timed out"}});
  std::string error;
  if (!Apply(cached, cached.Assemble(), now, /*from_cache=*/true, &error)) {
    log::Error("the saved snapshot does not build", {{"path", options_.cache_path}, {"error", error}});
  }
}

bool XdsClient::Apply(const xds::ResourceSet& resources, v1::Snapshot snapshot, Clock::time_point received,
                      bool from_cache, std::string* error) {
  const std::string version = snapshot.version();
  absl::Status st = apply_(std::move(snapshot));
  if (!st.ok()) {
    *error = std::string(st.message());
    return false;
  }
  const auto latency = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - received);
  applied_ = resources;
  applied_any_ = true;
  cache_.reset();
  if (!from_cache) save_pending_ = true;
  Update([&](XdsClientStatus& s) {
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
      stats_->SetGauge("meshplug_agent_xds_last_update_microseconds", {}, latency.count());
    }
  }
  log::Info("configuration applied", {{"version", version},
                                      {"source", from_cache ? "saved snapshot" : "xds"},
                                      {"latency_us", std::to_string(latency.count())}});
  return true;
}

void XdsClient::SaveIfPending() {
  if (!save_pending_ || options_.cache_path.empty()) return;
  save_pending_ = false;
  if (auto st = SaveSnapshotCache(options_.cache_path, agent_id_, applied_, status().active_version); !st.ok()) {
    log::Warn("cannot save the snapshot", {{"path", options_.cache_path}, {"error", std::string(st.message())}});
  }
}

}  // namespace meshplug::agent::xds
