#include "control_plane/security/identity_service.h"

#include "common/agent_id.h"
#include "common/log.h"
#include "common/strings.h"

namespace meshplug::control_plane::security {
namespace {

grpc::Status Refuse(grpc::StatusCode code, const std::string& why, const Caller& caller, const v1::SignRequest& req) {
  log::Warn("certificate refused", {{"node", req.node_id().substr(0, 256)}, {"caller", caller.Describe()}, {"reason", why}});
  return grpc::Status(code, why);
}

}  // namespace

grpc::ServerUnaryReactor* IdentityService::Sign(grpc::CallbackServerContext* ctx, const v1::SignRequest* req,
                                                v1::SignResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  auto caller = access_.Authenticate(*ctx);
  if (!caller.ok()) {
    reactor->Finish(Refuse(grpc::StatusCode::UNAUTHENTICATED, std::string(caller.status().message()), Caller{}, *req));
  } else {
    reactor->Finish(SignFor(*caller, *req, resp));
  }
  return reactor;
}

grpc::Status IdentityService::SignFor(const Caller& caller, const v1::SignRequest& req, v1::SignResponse* resp) {
  // Who the certificate is for: the workload the caller proved to be, nothing it says.
  std::string workload, service_account;
  if (!caller.workload.empty()) {
    workload = caller.workload;
    service_account = x509::ServiceAccountOf(caller.spiffe_id);
  } else if (caller.Is(Role::kJoin)) {
    workload = caller.token->subject();
    service_account = caller.token->service_account();
  } else {
    return Refuse(grpc::StatusCode::UNAUTHENTICATED,
                  "a certificate needs a join token (meshctl workload token NAMESPACE/NAME) or the workload's "
                  "current certificate",
                  caller, req);
  }
  if (req.node_id() != workload) {
    return Refuse(grpc::StatusCode::PERMISSION_DENIED,
                  Cat("this credential is for ", workload, ", not for \"", req.node_id().substr(0, 256), "\""), caller, req);
  }
  const auto parts = SplitAgentId(workload);
  if (!parts) return Refuse(grpc::StatusCode::INVALID_ARGUMENT, Cat("\"", workload, "\" is not NAMESPACE/NAME"), caller, req);
  const auto& [ns, name] = *parts;
  // A deleted namespace ends its workloads' identities: no more renewals.
  auto ns_entry = store_.Get(resources::Key{resources::Kind::kNamespace, "", ns});
  if (!ns_entry.ok()) return Refuse(grpc::StatusCode::UNAVAILABLE, std::string(ns_entry.status().message()), caller, req);
  if (!ns_entry->has_value()) {
    return Refuse(grpc::StatusCode::PERMISSION_DENIED, Cat("namespace \"", ns, "\" does not exist"), caller, req);
  }
  const CertificateSettings settings = ReadCertificateSettings(store_);
  auto chain = ca_.SignWorkload(req.csr_pem(), settings.trust_domain, ns, name, service_account, settings.lifetime);
  if (!chain.ok()) return Refuse(grpc::StatusCode::INVALID_ARGUMENT, Cat("csr_pem: ", chain.status().message()), caller, req);
  // Burnt only once the certificate is made, so a bad CSR does not waste the token.
  if (caller.workload.empty()) {
    if (auto st = tokens_.Redeem(*caller.token); !st.ok()) {
      return Refuse(static_cast<grpc::StatusCode>(st.code()), std::string(st.message()), caller, req);
    }
  }
  resp->set_certificate_chain_pem(*chain);
  resp->set_trust_bundle_pem(ca_.trust_bundle());
  if (auto issued = x509::Inspect(*chain); issued.ok() && registry_) {
    registry_->CertificateIssued(workload, {issued->spiffe_id, Rfc3339(issued->not_after), issued->authority_key_id});
  }
  log::Info("certificate issued", {{"workload", workload},
                                   {"identity", x509::SpiffeId(settings.trust_domain, ns, service_account)},
                                   {"lifetime_s", std::to_string(settings.lifetime.count())},
                                   {"renewal", caller.workload.empty() ? "no" : "yes"}});
  return grpc::Status::OK;
}

}  // namespace meshplug::control_plane::security
