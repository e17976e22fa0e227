#include "control_plane/api/admin_service.h"

#include <deque>
#include <mutex>

#include "common/agent_id.h"
#include "common/config_dump.h"
#include "common/log.h"
#include "common/strings.h"
#include "common/x509.h"
#include "control_plane/security/certificate_authority.h"
#include "control_plane/security/label_binding.h"
#include "control_plane/validation/validation.h"
#include "resources/object.h"

namespace meshplug::control_plane::api {

using security::Need;
using security::ToGrpc;

namespace {

// Runs `call` if the caller may, and finishes the unary RPC with its status (the response
// on success).
template <typename Resp, typename Call>
grpc::ServerUnaryReactor* Unary(const security::Access& access, Need need, const char* what,
                                grpc::CallbackServerContext* ctx, Resp* resp, Call&& call) {
  auto* reactor = ctx->DefaultReactor();
  security::Caller caller;
  if (grpc::Status allowed = access.Authorize(*ctx, need, what, &caller); !allowed.ok()) {
    reactor->Finish(allowed);
    return reactor;
  }
  absl::StatusOr<Resp> result = call(caller);
  if (result.ok()) *resp = std::move(*result);
  reactor->Finish(ToGrpc(result.status()));
  return reactor;
}

// PluginConfig values are often secrets (tokens, keys): only the admin role sees them.
constexpr const char* kRedacted = "(hidden: needs the admin role)";

void RedactSecrets(google::protobuf::Any& object) {
  mesh::v1::PluginConfig config;
  if (!object.Is<mesh::v1::PluginConfig>() || !object.UnpackTo(&config)) return;
  if (config.spec().config().fields().empty()) return;
  auto* fields = config.mutable_spec()->mutable_config()->mutable_fields();
  fields->clear();
  (*fields)["redacted"].set_string_value(kRedacted);
  object.PackFrom(config);
}

// A watch the caller may not open.
class RefusedWatch final : public grpc::ServerWriteReactor<v1::WatchEvent> {
 public:
  explicit RefusedWatch(const grpc::Status& st) { Finish(st); }
  void OnDone() override { delete this; }
};

// The service account a join token for `workload` gives: the one asked for, else the
// stored Workload's, else "default". The workload must be a valid name in an existing
// namespace, checked by the rules of applied Workloads.
absl::StatusOr<std::string> JoinServiceAccount(store::Store& store, const std::string& workload, const std::string& asked,
                                               const security::Labels& labels) {
  const auto parts = SplitAgentId(workload);
  if (!parts) return absl::InvalidArgumentError(Cat("workload: \"", workload, "\" is not NAMESPACE/NAME"));
  const auto& [ns, name] = *parts;
  resources::Document doc{"workload", 1, &resources::Info(resources::Kind::kWorkload), nullptr};
  auto wl = std::make_unique<mesh::v1::Workload>();
  resources::SetTypeFields(*doc.kind, *wl);
  wl->mutable_metadata()->set_namespace_(ns);
  wl->mutable_metadata()->set_name(name);
  wl->mutable_spec()->set_service_account(asked.empty() ? "default" : asked);
  wl->mutable_metadata()->mutable_labels()->insert(labels.begin(), labels.end());
  doc.object = std::move(wl);
  if (auto st = validation::Validate(doc, {}); !st.ok()) return st;
  auto ns_entry = store.Get(resources::Key{resources::Kind::kNamespace, "", ns});
  if (!ns_entry.ok()) return ns_entry.status();
  if (!ns_entry->has_value()) return absl::FailedPreconditionError(Cat("namespace \"", ns, "\" does not exist"));
  if (!asked.empty()) return asked;
  auto stored = store.Get(resources::Key{resources::Kind::kWorkload, ns, name});
  if (!stored.ok()) return stored.status();
  mesh::v1::Workload existing;
  if (stored->has_value() && existing.ParseFromString((*stored)->value) && !existing.spec().service_account().empty()) {
    return existing.spec().service_account();
  }
  return std::string("default");
}

constexpr std::chrono::seconds kDefaultJoinTtl{3600};
constexpr std::chrono::seconds kDefaultCredentialTtl{30 * 24 * 3600};
constexpr std::chrono::seconds kMaxTtl{366 * 24 * 3600};

// Streams store changes after a revision, one event per changed object, in order. Wakes
// on every commit; one write is in flight at a time.
class WatchReactor final : public grpc::ServerWriteReactor<v1::WatchEvent> {
 public:
  WatchReactor(store::Store& store, ResourceApi& api, int64_t since, bool redact)
      : store_(store), api_(api), last_(since == 0 ? store.Revision() : since), redact_(redact) {
    subscription_ = store_.Subscribe([this](int64_t) { Pump(); });
    Pump();
  }

  void OnWriteDone(bool ok) override {
    {
      std::lock_guard lock(mu_);
      writing_ = false;
      // A write already handed to the transport may complete with ok=true after the
      // cancel; the stream ends here either way, or it never would.
      if (!ok || cancelled_) return FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
    }
    Pump();
  }

  void OnCancel() override {
    std::lock_guard lock(mu_);
    cancelled_ = true;
    if (!writing_) FinishLocked(grpc::Status::CANCELLED);  // else OnWriteDone finishes
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
    if (redact_) RedactSecrets(*event_.mutable_object());
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
  const bool redact_;  // PluginConfig values hidden (not an admin)
  std::deque<store::Event> pending_;
  bool writing_ = false;
  bool cancelled_ = false;
  bool finished_ = false;
  v1::WatchEvent event_;
  store::Store::Subscription subscription_;
};

}  // namespace

grpc::ServerUnaryReactor* AdminService::Apply(grpc::CallbackServerContext* ctx,
                                              const v1::ApplyRequest* req, v1::ApplyResponse* resp) {
  return Unary(access_, Need::kWrite, "apply", ctx, resp, [&](const security::Caller&) {
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
  return Unary(access_, Need::kWrite, "delete", ctx, resp, [&](const security::Caller&) { return api_.Delete(*req); });
}

grpc::ServerUnaryReactor* AdminService::Get(grpc::CallbackServerContext* ctx,
                                            const v1::GetRequest* req, v1::GetResponse* resp) {
  return Unary(access_, Need::kRead, "get", ctx, resp, [&](const security::Caller& caller) {
    auto got = api_.Get(*req);
    if (got.ok() && !caller.Is(security::Role::kAdmin)) {
      for (auto& object : *got->mutable_objects()) RedactSecrets(object);
    }
    return got;
  });
}

grpc::ServerUnaryReactor* AdminService::Version(grpc::CallbackServerContext* ctx,
                                                const v1::VersionRequest*, v1::VersionResponse* resp) {
  return Unary(access_, Need::kRead, "version", ctx, resp, [&](const security::Caller&) -> absl::StatusOr<v1::VersionResponse> {
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
  return Unary(access_, Need::kRead, "proxy status", ctx, resp, [&](const security::Caller&) -> absl::StatusOr<v1::ProxyStatusResponse> {
    v1::ProxyStatusResponse out;
    for (auto& a : agents_.List()) *out.add_agents() = std::move(a);
    return out;
  });
}

grpc::ServerUnaryReactor* AdminService::ConfigDump(grpc::CallbackServerContext* ctx,
                                                   const v1::ConfigDumpRequest* req,
                                                   v1::ConfigDumpResponse* resp) {
  return Unary(access_, Need::kWrite, "config dump", ctx, resp, [&](const security::Caller&) -> absl::StatusOr<v1::ConfigDumpResponse> {
    // Accept "namespace/name" and "name.namespace" (namespaces have no dots; names may).
    std::string agent = req->agent();
    // An xDS token's client (proxy status lists it so) follows its workload's configuration.
    if (agent.ends_with(xds::kXdsClientSuffix)) agent.resize(agent.size() - xds::kXdsClientSuffix.size());
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

grpc::ServerUnaryReactor* AdminService::CreateToken(grpc::CallbackServerContext* ctx, const v1::CreateTokenRequest* req,
                                                    v1::CreateTokenResponse* resp) {
  return Unary(access_, Need::kWrite, "creating a token", ctx, resp, [&](const security::Caller&) -> absl::StatusOr<v1::CreateTokenResponse> {
    auto role = security::ParseRole(req->role());
    if (!role.ok()) return role.status();
    if (req->ttl_seconds() < 0 || std::chrono::seconds(req->ttl_seconds()) > kMaxTtl) {
      return absl::InvalidArgumentError(Cat("ttl: ", req->ttl_seconds(), " s is not between 1 s and ", kMaxTtl.count(), " s"));
    }
    std::chrono::seconds ttl(req->ttl_seconds());
    v1::CreateTokenResponse out;
    std::string subject, service_account;
    if (ttl.count() == 0) ttl = *role == security::Role::kJoin ? kDefaultJoinTtl : kDefaultCredentialTtl;
    if (*role == security::Role::kJoin) {
      const security::Labels labels(req->labels().begin(), req->labels().end());
      auto sa = JoinServiceAccount(store_, req->workload(), req->service_account(), labels);
      if (!sa.ok()) return sa.status();
      if (!labels.empty()) {
        if (auto st = security::BindLabels(store_, req->workload(), labels); !st.ok()) return st;
      }
      subject = req->workload();
      service_account = *sa;
      const auto [ns, name] = *SplitAgentId(subject);
      out.set_spiffe_id(x509::SpiffeId(security::ReadCertificateSettings(store_).trust_domain, ns, service_account));
      out.set_trust_bundle_pem(ca_rotation_.JoinRoots());
    } else if (*role == security::Role::kXds) {
      if (!req->labels().empty()) {
        return absl::InvalidArgumentError(
            "labels: an xDS token's client registers nothing; labels are its Workload's (meshctl apply)");
      }
      auto sa = JoinServiceAccount(store_, req->workload(), req->service_account(), {});
      if (!sa.ok()) return sa.status();
      if (auto st = EnsureWorkload(req->workload(), *sa); !st.ok()) return st;
      subject = req->workload();
      service_account = *sa;
      out.set_plaintext_xds_address(plaintext_xds_address_);
    } else {
      if (!req->workload().empty() || !req->labels().empty()) {
        return absl::InvalidArgumentError("workload, labels: only join and xds tokens are for a workload");
      }
    }
    v1::TokenClaims claims;
    out.set_token(tokens_.Issue(*role, subject, service_account, ttl, &claims));
    out.set_expires_unix(claims.expires_unix());
    log::Info("token issued", {{"role", claims.role()}, {"id", claims.id().substr(0, 6)}, {"subject", subject},
                               {"ttl_s", std::to_string(ttl.count())}});
    return out;
  });
}

absl::Status AdminService::EnsureWorkload(const std::string& workload, const std::string& service_account) {
  const auto [ns, name] = *SplitAgentId(workload);
  const resources::Key key{resources::Kind::kWorkload, ns, name};
  mesh::v1::Workload wl;
  resources::SetTypeFields(resources::Info(resources::Kind::kWorkload), wl);
  wl.mutable_metadata()->set_namespace_(ns);
  wl.mutable_metadata()->set_name(name);
  wl.mutable_metadata()->set_creation_timestamp(NowRfc3339());
  wl.mutable_metadata()->set_generation(1);
  wl.mutable_spec()->set_service_account(service_account);
  // Only if none exists (expected version 0): one an agent or an admin wrote stays as it is.
  auto created = store_.Commit({store::Write{key, wl.SerializeAsString(), 0}});
  if (created.ok()) {
    log::Info("workload created for an xDS token", {{"workload", workload}});
    return absl::OkStatus();
  }
  auto stored = store_.Get(key);
  return stored.ok() && stored->has_value() ? absl::OkStatus() : created.status();
}

grpc::ServerUnaryReactor* AdminService::RotateCa(grpc::CallbackServerContext* ctx, const v1::RotateCaRequest* req,
                                                 v1::CaStatus* resp) {
  const bool changes = !req->step().empty();
  return Unary(access_, changes ? Need::kWrite : Need::kRead, changes ? "rotating the CA" : "CA status", ctx, resp,
               [&](const security::Caller&) { return ca_rotation_.Run(*req); });
}

grpc::ServerWriteReactor<v1::WatchEvent>* AdminService::Watch(grpc::CallbackServerContext* ctx,
                                                              const v1::WatchRequest* req) {
  security::Caller caller;
  if (grpc::Status allowed = access_.Authorize(*ctx, Need::kRead, "watch", &caller); !allowed.ok()) {
    return new RefusedWatch(allowed);
  }
  return new WatchReactor(store_, api_, req->since_revision(), !caller.Is(security::Role::kAdmin));
}

}  // namespace meshplug::control_plane::api
