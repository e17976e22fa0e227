#include "control_plane/security/access.h"

#include "common/agent_id.h"
#include "common/log.h"
#include "common/strings.h"
#include "control_plane/security/label_binding.h"
#include "google/rpc/status.pb.h"

namespace meshplug::control_plane::security {
namespace {

constexpr std::string_view kBearer = "Bearer ";

std::string Property(const grpc::AuthContext& auth, const char* name) {
  const auto values = auth.FindPropertyValues(name);
  return values.empty() ? "" : std::string(values.front().data(), values.front().size());
}

}  // namespace

std::string Caller::Describe() const {
  if (!workload.empty()) return Cat("workload ", workload, " (", spiffe_id, ")");
  if (token) return Cat(token->role(), " token ", token->id().substr(0, 6), token->subject().empty() ? "" : " for ", token->subject());
  return "no credential";
}

grpc::Status ToGrpc(const absl::Status& st) {
  if (st.ok()) return grpc::Status::OK;
  // The details (a google.rpc.Status, gRPC's rich error model) tell clients that the
  // control plane itself answered: an UNAVAILABLE with them is its store, not the network.
  google::rpc::Status details;
  details.set_code(static_cast<int>(st.code()));
  details.set_message(std::string(st.message()));
  return grpc::Status(static_cast<grpc::StatusCode>(st.code()), details.message(), details.SerializeAsString());
}

absl::StatusOr<Caller> Access::Authenticate(const grpc::ServerContextBase& ctx) const {
  Caller caller;
  const auto& metadata = ctx.client_metadata();
  if (auto it = metadata.find("authorization"); it != metadata.end()) {
    const std::string_view value(it->second.data(), it->second.size());
    if (value.substr(0, kBearer.size()) != kBearer) {
      return absl::UnauthenticatedError("the authorization header must be \"Bearer <token>\"");
    }
    auto claims = tokens_.Verify(value.substr(kBearer.size()));
    if (!claims.ok()) return claims.status();
    caller.token = *std::move(claims);
  }
  const auto auth = ctx.auth_context();
  const std::string pem = auth ? Property(*auth, GRPC_X509_PEM_CERT_PROPERTY_NAME) : "";
  auto cert = x509::Certificate::Parse(pem);
  const std::optional<x509::CertInfo> info = cert.ok() ? std::optional(cert->Info()) : std::nullopt;
  // A certificate without a workload's names is not an agent's: it counts for nothing.
  if (info && !info->spiffe_id.empty() && info->common_name.find('/') != std::string::npos) {
    if (absl::Status verified = ca_.VerifyIssued(*cert, *info); !verified.ok()) return verified;
    caller.workload = info->common_name;
    caller.spiffe_id = info->spiffe_id;
    caller.certificate_expiry = info->not_after;
    caller.certificate_issuer = info->authority_key_id;
  }
  return caller;
}

absl::Status Access::AuthorizeXdsToken(const envoy::config::core::v3::Node& node, const std::string& agent,
                                       xds::AgentIdentity* identity) const {
  const auto& fields = node.metadata().fields();
  auto token = fields.find("token");
  if (token == fields.end() || token->second.string_value().empty()) {
    return absl::UnauthenticatedError(
        "an xDS stream needs the agent's workload certificate (mTLS; an agent gets one with a join token: meshctl "
        "workload token NAMESPACE/NAME) or, for Envoy's resource types, an xDS token in node.metadata.token (meshctl "
        "bootstrap grpc NAMESPACE/NAME)");
  }
  auto claims = tokens_.Verify(token->second.string_value());
  if (!claims.ok()) return absl::UnauthenticatedError(Cat("node.metadata.token: ", claims.status().message()));
  if (claims->role() != RoleName(Role::kXds)) {
    return absl::PermissionDeniedError(
        Cat("node.metadata.token is a ", claims->role(), " token, not an xDS token (meshctl bootstrap grpc ", agent, ")"));
  }
  if (claims->subject() != agent) {
    return absl::PermissionDeniedError(
        Cat("this xDS token is for ", claims->subject(), "; it may not receive the configuration of ", agent));
  }
  identity->envoy_types_only = true;
  return absl::OkStatus();
}

absl::Status Access::AuthorizeNode(const grpc::ServerContextBase& ctx, const envoy::config::core::v3::Node& node,
                                   mesh::v1::Workload& workload, xds::AgentIdentity* identity) const {
  auto caller = Authenticate(ctx);
  if (!caller.ok()) return caller.status();
  const std::string agent = AgentId(workload.metadata().namespace_(), workload.metadata().name());
  if (caller->workload.empty()) return AuthorizeXdsToken(node, agent, identity);
  if (caller->workload != agent) {
    return absl::PermissionDeniedError(
        Cat("this agent's certificate is for ", caller->workload, "; it may not receive the configuration of ", agent));
  }
  const std::string service_account = x509::ServiceAccountOf(caller->spiffe_id);
  auto* spec = workload.mutable_spec();
  if (spec->service_account().empty()) spec->set_service_account(service_account);
  if (spec->service_account() != service_account) {
    return absl::PermissionDeniedError(Cat("node.metadata.service_account is \"", spec->service_account(),
                                           "\" but the certificate is for service account \"", service_account, "\""));
  }
  const Labels labels(workload.metadata().labels().begin(), workload.metadata().labels().end());
  if (absl::Status st = CheckBoundLabels(store_, agent, labels); !st.ok()) return st;
  identity->spiffe_id = caller->spiffe_id;
  identity->certificate_expiry = Rfc3339(caller->certificate_expiry);
  identity->certificate_issuer = caller->certificate_issuer;
  return absl::OkStatus();
}

absl::Status Access::Decide(absl::StatusOr<Caller> caller, Need need, std::string_view what, std::string_view peer,
                            Caller* out) const {
  if (!caller.ok()) {
    log::Warn("admin call refused", {{"call", std::string(what)}, {"peer", std::string(peer)}, {"reason", std::string(caller.status().message())}});
    return caller.status();
  }
  if (caller->Is(Role::kAdmin) || (need == Need::kRead && caller->Is(Role::kReadOnly))) {
    if (out) *out = *std::move(caller);
    return absl::OkStatus();
  }
  if (!caller->token || caller->Is(Role::kJoin) || caller->Is(Role::kXds)) {
    log::Warn("admin call refused", {{"call", std::string(what)}, {"peer", std::string(peer)}, {"reason", "no admin credential"}});
    return absl::UnauthenticatedError(
        Cat(what, " needs an admin API credential: meshctl reads it from its config file (written by the control plane "
                  "at start; see --config) or MESHPLUG_TOKEN; `meshctl token create --role read-only` makes one to read"));
  }
  log::Warn("admin call refused", {{"call", std::string(what)}, {"peer", std::string(peer)}, {"caller", caller->Describe()}});
  return absl::PermissionDeniedError(Cat(what, " needs the admin role; this credential is ", caller->token->role()));
}

grpc::Status Access::Authorize(const grpc::ServerContextBase& ctx, Need need, std::string_view what,
                               Caller* out) const {
  return ToGrpc(Decide(Authenticate(ctx), need, what, ctx.peer(), out));
}

absl::Status Access::AuthorizeBearer(std::string_view token, Need need, std::string_view what,
                                     std::string_view peer) const {
  absl::StatusOr<Caller> caller = Caller{};
  if (!token.empty()) {
    absl::StatusOr<v1::TokenClaims> claims = tokens_.Verify(token);
    if (claims.ok()) {
      caller->token = *std::move(claims);
    } else {
      caller = claims.status();
    }
  }
  return Decide(std::move(caller), need, what, peer, nullptr);
}

}  // namespace meshplug::control_plane::security
