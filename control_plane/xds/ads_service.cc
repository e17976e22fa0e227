#include "control_plane/xds/ads_service.h"

#include <mutex>
#include <optional>
#include <utility>

#include "absl/algorithm/container.h"
#include "common/log.h"
#include "common/strings.h"
#include "common/xds_types.h"
#include "control_plane/xds/node_identity.h"
#include "control_plane/xds/response_bytes.h"
#include "control_plane/xds/stream_protocol.h"

namespace meshplug::control_plane::xds {
namespace {

// One ADS stream of either protocol: identifies the agent from the first request's node,
// follows its resources in the cache, writes one response at a time, finishes cleanly.
template <typename Protocol>
class Stream final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  Stream(grpc::CallbackServerContext* ctx, ConfigWatcher& configs, AgentRegistry& registry,
         AgentLifecycle& lifecycle, const NodeAuthorizer& authorizer)
      : ctx_(ctx), configs_(configs), registry_(registry), lifecycle_(lifecycle), authorizer_(authorizer) {}

  void Begin() { this->StartRead(&read_); }

  void OnReadDone(bool ok) override {
    // Parsed before taking the lock, which pushes to this stream wait for; only this
    // reaction touches read_, one read being outstanding at a time.
    typename Protocol::Request request;
    const bool parsed = ok && ParseFrom(read_, request);
    read_.Clear();
    std::lock_guard lock(mu_);
    if (!ok) return FinishLocked(grpc::Status::OK);  // the agent closed its side
    if (!parsed) {
      return FinishLocked(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                       Cat("the request does not parse as ", request.GetDescriptor()->full_name())));
    }
    if (!protocol_ && !Identify(request)) return;
    protocol_->Handle(request);
    WriteNextLocked();
    if (!finished_) this->StartRead(&read_);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mu_);
    writing_ = false;
    // gRPC is done with the bytes: our references to the shared encodings go, rather than
    // staying with every idle stream.
    response_.Clear();
    // A finish that waited for this write goes out now, whether the write worked or not:
    // without it the stream never ends and the server's shutdown waits for it forever.
    if (pending_finish_) {
      const grpc::Status st = *pending_finish_;
      pending_finish_.reset();
      this->Finish(st);
      return;
    }
    if (!ok) return FinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed"));
    WriteNextLocked();
  }

  void OnDone() override {
    watch_.reset();  // no callback runs after this returns
    if (protocol_ && registry_.Disconnected(protocol_->agent(), stream_id_)) {
      log::Info("agent disconnected", {{"agent", protocol_->agent()}});
      if (!protocol_->envoy_types_only()) {  // its node is the workload's registration
        lifecycle_.Disconnected(protocol_->agent());
      } else {
        registry_.ForgetIfDisconnected(protocol_->agent());  // nothing of it stays
      }
    }
    delete this;
  }

 private:
  bool Identify(const typename Protocol::Request& request) {
    const envoy::config::core::v3::Node& node = NodeOf(request);
    auto wl = WorkloadFromNode(node);
    if (!wl.ok()) {
      FinishLocked(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(wl.status().message())));
      return false;
    }
    AgentIdentity identity;
    if (auto st = authorizer_.AuthorizeNode(*ctx_, node, *wl, &identity); !st.ok()) {
      log::Warn("xds stream refused", {{"node", AgentId(*wl).substr(0, 256)}, {"peer", ctx_->peer()},
                                       {"reason", std::string(st.message())}});
      FinishLocked(grpc::Status(static_cast<grpc::StatusCode>(st.code()), std::string(st.message())));
      return false;
    }
    const std::string agent = AgentId(*wl);
    // A client with an xDS token follows the workload's configuration but is not its
    // agent: it registers nothing and is listed apart, so the agent's registration,
    // status and certificate stay the agent's.
    if (!identity.envoy_types_only) {
      if (auto st = lifecycle_.Register(*wl); !st.ok()) {
        FinishLocked(grpc::Status(static_cast<grpc::StatusCode>(st.code()), std::string(st.message())));
        return false;
      }
    }
    const std::string listed = identity.envoy_types_only ? XdsClientKey(agent) : agent;
    protocol_.emplace(registry_, listed, identity.envoy_types_only);
    // Only an agent's /stats is read (by Prometheus, the dashboard, meshctl), never an
    // address a token client names; a bad one costs the agent its metrics, not its stream.
    std::string admin_address;
    if (!identity.envoy_types_only) {
      absl::StatusOr<std::string> reported = AdminAddressFromNode(node);
      if (reported.ok()) {
        admin_address = *std::move(reported);
      } else {
        log::Warn("agent's admin address ignored", {{"agent", listed}, {"reason", std::string(reported.status().message())}});
      }
    }
    stream_id_ = registry_.Connected(listed, Protocol::kName, ctx_->peer(), identity, admin_address);
    log::Info("agent connected", {{"agent", listed}, {"protocol", Protocol::kName}, {"peer", ctx_->peer()}});
    if (!identity.envoy_types_only && node.user_agent_name() == xds_types::kAgentUserAgentName &&
        !absl::c_linear_search(node.client_features(), xds_types::kScriptsByContentFeature)) {
      log::Warn("agent built before scripts were replaced in place: a Plugin's changed script does not take "
                "effect there until the agent is upgraded (docs/operations.md, Upgrading)",
                {{"agent", listed}});
    }
    watch_ = configs_.Watch(agent, [this](const Resources& r) {
      std::lock_guard lock(mu_);
      protocol_->SetResources(r);
      WriteNextLocked();
    });
    if (auto r = configs_.Get(agent)) protocol_->SetResources(r);
    return true;
  }

  static const envoy::config::core::v3::Node& NodeOf(const typename Protocol::Request& req) { return req.node(); }

  // One write is in flight at a time, so a write that carries gRPC's buffer hint must
  // complete without reaching the wire: gRPC completes a hinted message at once while
  // under 64 KB wait in its buffer, except the stream's first, which waits for the
  // headers the hint holds back. So a write is hinted only after the first, and only
  // when the response after it is already taken (a new Service is three): that one is
  // written next, or Finish's trailers flush the buffer. The last goes without the hint
  // and sends them all in one write.
  void WriteNextLocked() {
    if (writing_ || finished_) return;
    if (has_next_) {
      response_.Swap(&next_);
    } else if (!protocol_->NextResponse(&response_)) {
      return;
    }
    const bool first = !std::exchange(wrote_before_, true);
    has_next_ = !first && protocol_->NextResponse(&next_);
    writing_ = true;
    grpc::WriteOptions options;
    if (has_next_) options.set_buffer_hint();
    this->StartWrite(&response_, options);
  }

  void FinishLocked(const grpc::Status& st) {
    if (finished_) return;
    finished_ = true;
    if (writing_) {
      pending_finish_ = st;  // OnWriteDone finishes once the write completes
      return;
    }
    this->Finish(st);
  }

  grpc::CallbackServerContext* ctx_;
  ConfigWatcher& configs_;
  AgentRegistry& registry_;
  AgentLifecycle& lifecycle_;
  const NodeAuthorizer& authorizer_;
  std::mutex mu_;
  std::optional<Protocol> protocol_;  // once the agent is identified
  grpc::ByteBuffer read_;
  grpc::ByteBuffer response_;
  grpc::ByteBuffer next_;  // taken from the protocol, written next
  bool has_next_ = false;
  bool wrote_before_ = false;
  bool writing_ = false;
  bool finished_ = false;
  std::optional<grpc::Status> pending_finish_;
  uint64_t stream_id_ = 0;
  std::shared_ptr<void> watch_;
};

}  // namespace

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* AdsService::StreamAggregatedResources(grpc::CallbackServerContext* ctx) {
  auto* s = new Stream<SotwProtocol>(ctx, configs_, registry_, lifecycle_, authorizer_);
  s->Begin();
  return s;
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* AdsService::DeltaAggregatedResources(grpc::CallbackServerContext* ctx) {
  auto* s = new Stream<DeltaProtocol>(ctx, configs_, registry_, lifecycle_, authorizer_);
  s->Begin();
  return s;
}

}  // namespace meshplug::control_plane::xds
