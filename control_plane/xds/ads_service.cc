#include "control_plane/xds/ads_service.h"

#include <map>
#include <mutex>
#include <optional>
#include <set>

#include "common/log.h"
#include "common/strings.h"
#include "control_plane/xds/node_identity.h"

namespace meshplug::control_plane::xds {
namespace {

namespace discovery = envoy::service::discovery::v3;

// The first type, in push order, flagged to be sent; clears its flag. Both protocols keep
// per-type state with a `send` flag.
template <typename TypeState>
std::pair<const std::string*, TypeState*> TakeNextToSend(std::map<std::string, TypeState>& types) {
  for (const auto& type : xds_types::TypeUrls()) {
    auto it = types.find(type);
    if (it == types.end() || !it->second.send) continue;
    it->second.send = false;
    return {&type, &it->second};
  }
  return {nullptr, nullptr};
}

bool KnownType(const std::string& type_url) {
  for (const auto& t : xds_types::TypeUrls()) {
    if (t == type_url) return true;
  }
  return false;
}

// What both protocols share: identifying the agent from the first request's node,
// following its resources in the cache, one write at a time, and finishing cleanly.
template <typename Req, typename Resp>
class Stream : public grpc::ServerBidiReactor<Req, Resp> {
 public:
  Stream(grpc::CallbackServerContext* ctx, ConfigWatcher& configs, AgentRegistry& registry,
         AgentLifecycle& lifecycle, const char* protocol)
      : ctx_(ctx), configs_(configs), registry_(registry), lifecycle_(lifecycle), protocol_(protocol) {}

  void Begin() { this->StartRead(&request_); }

  void OnReadDone(bool ok) override {
    std::lock_guard lock(mu_);
    if (!ok) return FinishLocked(grpc::Status::OK);  // the agent closed its side
    if (agent_.empty() && !Identify()) return;
    Handle(request_);
    WriteNextLocked();
    if (!finished_) this->StartRead(&request_);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mu_);
    writing_ = false;
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
    if (!agent_.empty() && registry_.Disconnected(agent_, stream_id_)) {
      lifecycle_.Disconnected(agent_);
      log::Info("agent disconnected", {{"agent", agent_}});
    }
    delete this;
  }

 protected:
  virtual void Handle(const Req& req) = 0;
  // The next response to send, if any; called with the lock held.
  virtual std::optional<Resp> NextResponse() = 0;
  virtual void OnNewResources() = 0;

  std::string NextNonce() { return std::to_string(++nonce_counter_); }

  // Requests for types we do not serve (Envoy's own, for now) get no answer.
  bool Served(const std::string& type) const {
    if (KnownType(type)) return true;
    log::Debug("request for an unknown type ignored", {{"agent", agent_}, {"type", type}});
    return false;
  }

  std::string agent_;
  Resources resources_;

 private:
  bool Identify() {
    auto wl = WorkloadFromNode(NodeOf(request_));
    if (!wl.ok()) {
      FinishLocked(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(wl.status().message())));
      return false;
    }
    if (auto st = lifecycle_.Register(*wl); !st.ok()) {
      FinishLocked(grpc::Status(static_cast<grpc::StatusCode>(st.code()), std::string(st.message())));
      return false;
    }
    agent_ = AgentId(*wl);
    stream_id_ = registry_.Connected(agent_, protocol_, ctx_->peer());
    log::Info("agent connected", {{"agent", agent_}, {"protocol", protocol_}, {"peer", ctx_->peer()}});
    watch_ = configs_.Watch(agent_, [this](const Resources& r) {
      std::lock_guard lock(mu_);
      resources_ = r;
      OnNewResources();
      WriteNextLocked();
    });
    if (auto r = configs_.Get(agent_)) resources_ = r;
    return true;
  }

  static const envoy::config::core::v3::Node& NodeOf(const Req& req) { return req.node(); }

  void WriteNextLocked() {
    if (writing_ || finished_) return;
    auto next = NextResponse();
    if (!next) return;
    response_ = std::move(*next);
    writing_ = true;
    this->StartWrite(&response_);
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
  const char* protocol_;

 protected:
  AgentRegistry& registry() { return registry_; }
  std::mutex mu_;

 private:
  Req request_;
  Resp response_;
  bool writing_ = false;
  bool finished_ = false;
  std::optional<grpc::Status> pending_finish_;
  uint64_t stream_id_ = 0;
  uint64_t nonce_counter_ = 0;
  std::shared_ptr<void> watch_;
};

// State of the world: every response carries all subscribed resources of its type.
class SotwStream final : public Stream<discovery::DiscoveryRequest, discovery::DiscoveryResponse> {
 public:
  using Stream::Stream;

 private:
  struct TypeState {
    bool subscribed = false;
    bool wildcard = false;
    bool explicit_names_seen = false;
    std::set<std::string> names;
    std::string nonce;         // of the last response
    std::string sent_version;  // of the last response
    bool send = false;
  };

  void Handle(const discovery::DiscoveryRequest& req) override {
    const std::string& type = req.type_url();
    if (!Served(type)) return;
    TypeState& t = types_[type];
    // A request answering an older response than the last one is stale: ignore it.
    if (!req.response_nonce().empty() && req.response_nonce() != t.nonce) return;
    if (!req.response_nonce().empty()) {
      if (req.has_error_detail()) {
        registry().Nacked(agent_, type, req.error_detail().message());
        log::Warn("agent rejected a response", {{"agent", agent_}, {"type", type},
                                                 {"version", t.sent_version},
                                                 {"error", req.error_detail().message()}});
      } else {
        registry().Acked(agent_, type, req.version_info());
      }
    }
    const bool first = !t.subscribed;
    t.subscribed = true;
    const std::set<std::string> names(req.resource_names().begin(), req.resource_names().end());
    const bool wildcard = names.count("*") || (names.empty() && !t.explicit_names_seen);
    t.explicit_names_seen = t.explicit_names_seen || !names.empty();
    const bool changed = !first && (wildcard != t.wildcard || (!wildcard && names != t.names));
    t.wildcard = wildcard;
    t.names = wildcard ? std::set<std::string>{} : names;
    // A reconnecting agent that already runs our version of a wildcard type needs nothing.
    const bool up_to_date = resources_ && t.wildcard && req.version_info() == resources_->type_versions.at(type);
    if ((first && !up_to_date) || changed) t.send = true;
    if (first && up_to_date) t.sent_version = req.version_info();
  }

  void OnNewResources() override {
    for (auto& [type, t] : types_) {
      if (t.subscribed && resources_->type_versions.at(type) != t.sent_version) t.send = true;
    }
  }

  std::optional<discovery::DiscoveryResponse> NextResponse() override {
    if (!resources_) return std::nullopt;
    auto [next, state] = TakeNextToSend(types_);
    if (!next) return std::nullopt;
    const std::string& type = *next;
    TypeState& t = *state;
    discovery::DiscoveryResponse resp;
    resp.set_type_url(type);
    resp.set_version_info(resources_->type_versions.at(type));
    for (const auto& [name, r] : resources_->Of(type)) {
      if (t.wildcard || t.names.count(name)) *resp.add_resources() = r->any;
    }
    t.nonce = NextNonce();
    t.sent_version = resp.version_info();
    resp.set_nonce(t.nonce);
    resp.mutable_control_plane()->set_identifier("meshplug");
    registry().Sent(agent_, type, t.sent_version);
    return resp;
  }

  std::map<std::string, TypeState> types_;
};

// Incremental: responses carry what changed and what was removed, per resource version.
class DeltaStream final : public Stream<discovery::DeltaDiscoveryRequest, discovery::DeltaDiscoveryResponse> {
 public:
  using Stream::Stream;

 private:
  struct TypeState {
    bool wildcard = false;
    std::set<std::string> names;
    std::map<std::string, std::string> client_versions;  // what the agent has, as far as we know
    std::set<std::string> told_missing;                  // subscribed names reported absent
    std::map<std::string, std::string> nonce_versions;   // nonce → system version, recent
    bool send = false;
  };

  void Handle(const discovery::DeltaDiscoveryRequest& req) override {
    const std::string& type = req.type_url();
    if (!Served(type)) return;
    const bool first = !types_.count(type);
    TypeState& t = types_[type];
    if (first) {
      t.client_versions.insert(req.initial_resource_versions().begin(), req.initial_resource_versions().end());
      if (req.resource_names_subscribe().empty()) t.wildcard = true;  // legacy wildcard
    }
    // Subscription changes count even with a stale nonce.
    for (const auto& n : req.resource_names_subscribe()) {
      if (n == "*") {
        t.wildcard = true;
      } else if (t.names.insert(n).second && !first) {
        t.client_versions.erase(n);  // newly subscribed: send it even if unchanged
        t.told_missing.erase(n);
      }
    }
    for (const auto& n : req.resource_names_unsubscribe()) {
      if (n == "*") {
        t.wildcard = false;
      } else {
        t.names.erase(n);
        t.told_missing.erase(n);
        if (!t.wildcard) t.client_versions.erase(n);
      }
    }
    if (!req.response_nonce().empty()) {
      auto v = t.nonce_versions.find(req.response_nonce());
      const std::string version = v == t.nonce_versions.end() ? "" : v->second;
      if (req.has_error_detail()) {
        registry().Nacked(agent_, type, req.error_detail().message());
        log::Warn("agent rejected a response", {{"agent", agent_}, {"type", type}, {"version", version},
                                                 {"error", req.error_detail().message()}});
      } else if (!version.empty()) {
        registry().Acked(agent_, type, version);
      }
    }
    t.send = true;
  }

  void OnNewResources() override {
    for (auto& [_, t] : types_) t.send = true;
  }

  std::optional<discovery::DeltaDiscoveryResponse> NextResponse() override {
    if (!resources_) return std::nullopt;
    // A type with nothing new for this agent sends nothing; the next flagged one may.
    for (;;) {
      auto [next, state] = TakeNextToSend(types_);
      if (!next) return std::nullopt;
      const std::string& type = *next;
      TypeState& t = *state;
      const auto& ours = resources_->Of(type);
      discovery::DeltaDiscoveryResponse resp;
      auto wanted = [&](const std::string& name) { return t.wildcard || t.names.count(name); };
      for (const auto& [name, r] : ours) {
        if (!wanted(name)) continue;
        auto cv = t.client_versions.find(name);
        if (cv != t.client_versions.end() && cv->second == r->version) continue;
        auto* res = resp.add_resources();
        res->set_name(name);
        res->set_version(r->version);
        *res->mutable_resource() = r->any;
        t.client_versions[name] = r->version;
      }
      for (auto cv = t.client_versions.begin(); cv != t.client_versions.end();) {
        if (ours.count(cv->first) && wanted(cv->first)) {
          ++cv;
          continue;
        }
        resp.add_removed_resources(cv->first);
        cv = t.client_versions.erase(cv);
      }
      for (const auto& n : t.names) {
        if (!ours.count(n) && t.told_missing.insert(n).second) resp.add_removed_resources(n);
      }
      if (resp.resources().empty() && resp.removed_resources().empty()) continue;
      resp.set_type_url(type);
      resp.set_system_version_info(resources_->type_versions.at(type));
      resp.set_nonce(NextNonce());
      t.nonce_versions[resp.nonce()] = resp.system_version_info();
      if (t.nonce_versions.size() > 16) t.nonce_versions.erase(t.nonce_versions.begin());
      registry().Sent(agent_, type, resp.system_version_info());
      return resp;
    }
  }

  std::map<std::string, TypeState> types_;
};

}  // namespace

grpc::ServerBidiReactor<discovery::DiscoveryRequest, discovery::DiscoveryResponse>*
AdsService::StreamAggregatedResources(grpc::CallbackServerContext* ctx) {
  auto* s = new SotwStream(ctx, configs_, registry_, lifecycle_, "sotw");
  s->Begin();
  return s;
}

grpc::ServerBidiReactor<discovery::DeltaDiscoveryRequest, discovery::DeltaDiscoveryResponse>*
AdsService::DeltaAggregatedResources(grpc::CallbackServerContext* ctx) {
  auto* s = new DeltaStream(ctx, configs_, registry_, lifecycle_, "delta");
  s->Begin();
  return s;
}

}  // namespace meshplug::control_plane::xds
