#include "control_plane/api/admin_service.h"

#include <deque>
#include <mutex>

#include "common/agent_id.h"
#include "common/config_dump.h"
#include "common/log.h"

namespace meshplug::control_plane::api {

grpc::Status ToGrpc(const absl::Status& st) {
  if (st.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(st.code()), std::string(st.message()));
}

namespace {

// Runs `call` and finishes the unary RPC with its status (the response on success).
template <typename Resp, typename Call>
grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* ctx, Resp* resp, Call&& call) {
  auto* reactor = ctx->DefaultReactor();
  absl::StatusOr<Resp> result = call();
  if (result.ok()) *resp = std::move(*result);
  reactor->Finish(ToGrpc(result.status()));
  return reactor;
}

// Streams store changes after a revision, one event per changed object, in order. Wakes
// on every commit; one write is in flight at a time.
class WatchReactor final : public grpc::ServerWriteReactor<v1::WatchEvent> {
 public:
  WatchReactor(store::Store& store, ResourceApi& api, int64_t since)
      : store_(store), api_(api), last_(since == 0 ? store.Revision() : since) {
    subscription_ = store_.Subscribe([this](int64_t) { Pump(); });
    Pump();
  }

  void OnWriteDone(bool ok) override {
    {
      std::lock_guard lock(mu_);
      writing_ = false;
      if (!ok) return FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
    }
    Pump();
  }

  void OnCancel() override {
    std::lock_guard lock(mu_);
    // An outstanding write completes with ok=false and finishes there.
    if (!writing_) FinishLocked(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    subscription_.reset();
    delete this;
  }

 private:
  void Pump() {
    std::lock_guard lock(mu_);
    if (writing_ || finished_) return;
    if (pending_.empty()) {
      auto events = store_.ChangesSince(last_, 100);
      if (!events.ok()) return FinishLocked(ToGrpc(events.status()));
      for (auto& ev : *events) {
        last_ = ev.revision;
        pending_.push_back(std::move(ev));
      }
      if (pending_.empty()) return;
    }
    const store::Event ev = std::move(pending_.front());
    pending_.pop_front();
    auto obj = api_.Decode(ev.entry);
    if (!obj.ok()) return FinishLocked(ToGrpc(obj.status()));
    event_.Clear();
    event_.set_revision(ev.revision);
    event_.set_type(ev.type == store::Event::Type::kDelete ? "DELETED"
                    : ev.entry.create_revision == ev.revision ? "ADDED"
                                                              : "MODIFIED");
    event_.mutable_object()->PackFrom(**obj);
    writing_ = true;
    StartWrite(&event_);
  }

  void FinishLocked(const grpc::Status& st) {
    if (finished_) return;
    finished_ = true;
    Finish(st);
  }

  store::Store& store_;
  ResourceApi& api_;
  std::mutex mu_;
  int64_t last_;  // every event up to this revision was fetched
  std::deque<store::Event> pending_;
  bool writing_ = false;
  bool finished_ = false;
  v1::WatchEvent event_;
  store::Store::Subscription subscription_;
};

}  // namespace

grpc::ServerUnaryReactor* AdminService::Apply(grpc::CallbackServerContext* ctx,
                                              const v1::ApplyRequest* req, v1::ApplyResponse* resp) {
  return Unary(ctx, resp, [&] {
    auto r = api_.Apply(*req);
    if (r.ok() && !req->dry_run()) {
      log::Info("applied", {{"objects", std::to_string(r->results_size())},
                            {"revision", std::to_string(r->revision())}});
    }
    return r;
  });
}

grpc::ServerUnaryReactor* AdminService::Delete(grpc::CallbackServerContext* ctx,
                                               const v1::DeleteRequest* req, v1::DeleteResponse* resp) {
  return Unary(ctx, resp, [&] { return api_.Delete(*req); });
}

grpc::ServerUnaryReactor* AdminService::Get(grpc::CallbackServerContext* ctx,
                                            const v1::GetRequest* req, v1::GetResponse* resp) {
  return Unary(ctx, resp, [&] { return api_.Get(*req); });
}

grpc::ServerUnaryReactor* AdminService::Version(grpc::CallbackServerContext* ctx,
                                                const v1::VersionRequest*, v1::VersionResponse* resp) {
  return Unary(ctx, resp, [&]() -> absl::StatusOr<v1::VersionResponse> {
    v1::VersionResponse v;
    v.set_version(kVersion);
    v.set_revision(store_.Revision());
    v.set_store(store_.Describe());
    return v;
  });
}

grpc::ServerUnaryReactor* AdminService::ProxyStatus(grpc::CallbackServerContext* ctx,
                                                    const v1::ProxyStatusRequest*,
                                                    v1::ProxyStatusResponse* resp) {
  return Unary(ctx, resp, [&]() -> absl::StatusOr<v1::ProxyStatusResponse> {
    v1::ProxyStatusResponse out;
    for (auto& a : registry_.List()) *out.add_agents() = std::move(a);
    return out;
  });
}

grpc::ServerUnaryReactor* AdminService::ConfigDump(grpc::CallbackServerContext* ctx,
                                                   const v1::ConfigDumpRequest* req,
                                                   v1::ConfigDumpResponse* resp) {
  return Unary(ctx, resp, [&]() -> absl::StatusOr<v1::ConfigDumpResponse> {
    // Accept "namespace/name" and "name.namespace" (namespaces have no dots; names may).
    std::string agent = req->agent();
    if (agent.find('/') == std::string::npos && agent.find('.') != std::string::npos) {
      const auto dot = agent.rfind('.');
      agent = AgentId(agent.substr(dot + 1), agent.substr(0, dot));
    }
    auto resources = configs_.Get(agent);
    if (!resources) {
      return absl::NotFoundError("no agent \"" + req->agent() +
                                 "\" (name it namespace/name; see meshctl proxy status)");
    }
    v1::ConfigDumpResponse out;
    out.set_json(ConfigDumpJson(xds::ToSnapshot(*resources)));
    return out;
  });
}

grpc::ServerWriteReactor<v1::WatchEvent>* AdminService::Watch(grpc::CallbackServerContext*,
                                                              const v1::WatchRequest* req) {
  return new WatchReactor(store_, api_, req->since_revision());
}

}  // namespace meshplug::control_plane::api
