#include "agent/xds/workload_identity.h"

#include <algorithm>
#include <filesystem>

#include "common/log.h"
#include "common/files.h"
#include "common/strings.h"
#include "common/x509.h"
#include "agent/xds/grpc_call.h"
#include "meshplug/v1/identity.pb.h"
#include "net/tls.h"

namespace meshplug::agent::xds {
namespace {

constexpr std::string_view kChainMark = "# certificate chain\n";
constexpr std::string_view kBundleMark = "# trust bundle\n";

// What a certificate chain says, as IdentityMaterial.
absl::StatusOr<IdentityMaterial> Describe(std::string key, std::string chain, std::string bundle) {
  auto info = x509::Inspect(chain);
  if (!info.ok()) return info.status();
  if (!x509::KeyMatches(key, chain)) return absl::InvalidArgumentError("the key is not the certificate's");
  return IdentityMaterial{std::move(key),    std::move(chain), std::move(bundle),        info->spiffe_id,
                          info->common_name, info->not_before, info->not_after,         info->authority_key_id,
                          {}};
}

// mTLS to the control plane with `m`'s certificate. Its serving certificate is verified
// with the mesh's roots from the latest snapshot once there is one (a finished CA rotation
// drops the old root here too), else with those the agent joined with as well.
absl::StatusOr<ControlPlaneCredentials> MutualTls(const IdentityMaterial& m, const std::string& join_roots) {
  const bool from_snapshot = !m.trusted_issuers.empty();
  auto tls = net::ServerVerifyingContext(
      from_snapshot || m.bundle_pem.find(join_roots) != std::string::npos ? m.bundle_pem : join_roots + m.bundle_pem,
      m.key_pem, m.chain_pem);
  if (!tls.ok()) return tls.status();
  return ControlPlaneCredentials{*std::move(tls), ""};
}

}  // namespace

absl::StatusOr<IdentityMaterial> ReadIdentityFile(const std::string& path) {
  if (!std::filesystem::exists(path)) return absl::NotFoundError(Cat("no identity file ", path));
  auto read = ReadFileText(path, "the identity file");
  if (!read.ok()) return read.status();
  const std::string& text = *read;
  const size_t chain = text.find(kChainMark), bundle = text.find(kBundleMark);
  if (chain == std::string::npos || bundle == std::string::npos || bundle < chain) {
    return absl::InvalidArgumentError(Cat(path, ": not a meshplug identity file"));
  }
  return Describe(text.substr(0, chain), text.substr(chain + kChainMark.size(), bundle - chain - kChainMark.size()),
                  text.substr(bundle + kBundleMark.size()));
}

absl::Status WriteIdentityFile(const std::string& path, const IdentityMaterial& m) {
  return WritePrivateFile(path, Cat(m.key_pem, kChainMark, m.chain_pem, kBundleMark, m.bundle_pem));
}

WorkloadIdentity::WorkloadIdentity(Options options, Stats* stats)
    : options_(std::move(options)), servers_(std::make_shared<ServerList>(options_.server_address)), stats_(stats) {
  if (options_.path.empty()) return;
  auto saved = ReadIdentityFile(options_.path);
  if (!saved.ok()) {
    if (saved.status().code() != absl::StatusCode::kNotFound) {
      log::Warn("saved identity not usable", {{"path", options_.path}, {"error", std::string(saved.status().message())}});
    }
    return;
  }
  if (saved->workload != options_.agent_id) {
    log::Warn("saved identity is another workload's; ignored", {{"path", options_.path}, {"for", saved->workload}});
  } else if (saved->not_after <= Clock::now()) {
    log::Warn("saved certificate has expired; a new join token is needed",
              {{"path", options_.path}, {"expired", Rfc3339(saved->not_after)}});
  } else {
    log::Info("saved identity loaded", {{"identity", saved->spiffe_id}, {"expires", Rfc3339(saved->not_after)}});
    Install(*std::move(saved));
  }
}

WorkloadIdentity::~WorkloadIdentity() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (renewer_.joinable()) renewer_.join();
}

std::optional<IdentityMaterial> WorkloadIdentity::current() const {
  std::lock_guard lock(mu_);
  return current_;
}

WorkloadIdentity::Clock::time_point WorkloadIdentity::RenewAt(Clock::time_point installed, Clock::time_point not_after) {
  // At least a few seconds apart, even when a skewed clock makes a new certificate look old.
  return installed + std::max<Clock::duration>((not_after - installed) / 2, std::chrono::seconds(5));
}

absl::StatusOr<ControlPlaneCredentials> WorkloadIdentity::Credentials() {
  std::optional<IdentityMaterial> now = current();
  if (!now || now->not_after <= Clock::now()) {
    if (auto st = Join(); !st.ok()) return st;
    now = current();
  }
  return MutualTls(*now, options_.ca_pem);
}

absl::Status WorkloadIdentity::Join() {
  {
    std::lock_guard lock(mu_);
    if (options_.join_token.empty() || token_spent_) {
      return absl::UnauthenticatedError(
          Cat("no valid certificate", current_ ? Cat(" (it expired at ", Rfc3339(current_->not_after), ")") : "",
              " and no unused join token: give one with --join_token_file or the bootstrap's join_token (meshctl workload "
              "token ",
              options_.agent_id, ")"));
    }
  }
  auto tls = net::ServerVerifyingContext(options_.ca_pem, "", "");
  absl::Status st = tls.ok() ? Obtain(ControlPlaneCredentials{*std::move(tls), options_.join_token}, "join")
                             : tls.status();
  // The control plane accepts a token once: only a refusal for another reason (it was
  // unreachable) leaves it worth trying again.
  if (st.ok() || st.code() == absl::StatusCode::kUnauthenticated || st.code() == absl::StatusCode::kPermissionDenied) {
    std::lock_guard lock(mu_);
    token_spent_ = true;
  }
  return st;
}

absl::Status WorkloadIdentity::Renew() {
  std::optional<IdentityMaterial> now = current();
  if (!now) return absl::FailedPreconditionError("no certificate to renew");
  return Obtain(MutualTls(*now, options_.ca_pem), "renewal");
}

absl::Status WorkloadIdentity::Obtain(const absl::StatusOr<ControlPlaneCredentials>& credentials, const char* why) {
  if (!credentials.ok()) return credentials.status();
  auto key = x509::NewPrivateKey();
  if (!key.ok()) return key.status();
  std::optional<IdentityMaterial> before = current();
  auto csr = x509::MakeCsr(*key, before ? before->spiffe_id : "");
  if (!csr.ok()) return csr.status();
  v1::SignRequest req;
  req.set_csr_pem(*csr);
  req.set_node_id(options_.agent_id);
  v1::SignResponse resp;
  absl::Status st;
  std::string server;
  // The replica that serves the agent's stream first (it keeps the agent's status); one
  // that does not answer is passed over for the next, without moving the stream.
  for (const std::string& replica : servers_->InTurn()) {
    server = replica;
    std::lock_guard lock(call_mu_);
    st = UnaryCall(io_, server, *credentials, "/meshplug.v1.Identity/Sign", req, resp, options_.timeout);
    // Not after a deadline: the call may have been served (a join token is good once).
    if (st.code() != absl::StatusCode::kUnavailable) break;
  }
  auto count = [&](const char* result) {
    if (stats_) stats_->Count("meshplug_agent_certificate_requests_total", {{"kind", why}, {"result", result}});
  };
  if (!st.ok()) {
    count("failed");
    return absl::Status(st.code(), Cat("certificate ", why, " at ", server, ": ", st.message()));
  }
  auto material = Describe(*std::move(key), resp.certificate_chain_pem(), resp.trust_bundle_pem());
  if (!material.ok()) {
    count("failed");
    return absl::InternalError(Cat("the control plane sent an unusable certificate: ", material.status().message()));
  }
  count("ok");
  log::Info("certificate obtained", {{"how", why}, {"identity", material->spiffe_id},
                                     {"expires", Rfc3339(material->not_after)}});
  if (!options_.path.empty()) {
    if (auto saved = WriteIdentityFile(options_.path, *material); !saved.ok()) {
      log::Warn("cannot save the identity", {{"path", options_.path}, {"error", std::string(saved.message())}});
    }
  }
  Install(*std::move(material));
  return absl::OkStatus();
}

void WorkloadIdentity::OnCertificate(std::function<void(const IdentityMaterial&)> fn) {
  std::lock_guard install(install_mu_);
  on_certificate_ = std::move(fn);
  if (std::optional<IdentityMaterial> now = current()) on_certificate_(*now);
}

void WorkloadIdentity::Trust(const v1::TrustBundle& trust) {
  if (trust.roots_pem().empty()) return;  // a control plane without a CA
  TrustedRoots roots;
  for (const auto& root : trust.roots_pem()) roots.bundle_pem += root;
  roots.issuers.assign(trust.issuer_key_ids().begin(), trust.issuer_key_ids().end());
  std::lock_guard install(install_mu_);
  std::optional<IdentityMaterial> updated;
  bool renew = false;
  {
    std::lock_guard lock(mu_);
    trust_ = roots;
    if (!current_) return;
    if (current_->bundle_pem != roots.bundle_pem || current_->trusted_issuers != roots.issuers) {
      current_->bundle_pem = roots.bundle_pem;
      current_->trusted_issuers = roots.issuers;
      updated = current_;
    }
    const std::string& signer = trust.signer_key_id();
    if (!signer.empty() && current_->issuer_key_id != signer && renewal_asked_for_ != signer) {
      renewal_asked_for_ = signer;
      behind_signer_ = 0;
      renew = renew_now_ = true;
    }
  }
  if (renew) {
    log::Info("the mesh CA changed; renewing the certificate now", {{"signer", trust.signer_key_id()}});
    cv_.notify_all();
  }
  if (!updated) return;
  if (!options_.path.empty()) {
    if (auto saved = WriteIdentityFile(options_.path, *updated); !saved.ok()) {
      log::Warn("cannot save the identity", {{"path", options_.path}, {"error", std::string(saved.message())}});
    }
  }
  if (on_certificate_) on_certificate_(*updated);
}

void WorkloadIdentity::Install(IdentityMaterial material) {
  // One install at a time, so the data plane gets certificates in the order they become
  // current (a join and a renewal can race).
  std::lock_guard install(install_mu_);
  {
    std::lock_guard lock(mu_);
    if (trust_) {
      material.bundle_pem = trust_->bundle_pem;
      material.trusted_issuers = trust_->issuers;
    }
  }
  if (on_certificate_) on_certificate_(material);
  if (stats_) {
    stats_->SetGauge("meshplug_agent_certificate_expiry_seconds", {},
                     std::chrono::duration_cast<std::chrono::seconds>(material.not_after.time_since_epoch()).count());
  }
  {
    std::lock_guard lock(mu_);
    current_ = std::move(material);
    installed_at_ = Clock::now();
    ++generation_;
  }
  cv_.notify_all();
}

void WorkloadIdentity::StartRenewal() {
  renewer_ = std::thread([this] { RenewLoop(); });
}

void WorkloadIdentity::RenewLoop() {
  std::optional<Clock::time_point> retry_at;
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (!current_) {
      cv_.wait(lock, [&] { return stopping_ || current_.has_value(); });
      continue;
    }
    const Clock::time_point not_after = current_->not_after;
    const uint64_t seen = generation_;
    if (Clock::now() >= not_after) {
      // An expired certificate cannot renew itself: only a new join (a new token) helps.
      log::Error("the workload certificate expired; the agent needs a new join token",
                 {{"expired", Rfc3339(not_after)}, {"agent", options_.agent_id}});
      cv_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      retry_at.reset();
      continue;
    }
    const Clock::time_point due = retry_at.value_or(RenewAt(installed_at_, not_after));
    // A certificate installed meanwhile (a join) sets the next due time; a new signer
    // (Trust) asks for a renewal at once.
    const bool woken = cv_.wait_until(lock, due, [&] { return stopping_ || generation_ != seen || renew_now_; });
    if (stopping_) break;
    if (woken && !renew_now_) {
      retry_at.reset();
      continue;
    }
    renew_now_ = false;
    lock.unlock();
    const absl::Status st = Renew();
    lock.lock();
    if (st.ok() && current_ && !renewal_asked_for_.empty() && current_->issuer_key_id != renewal_asked_for_ &&
        behind_signer_ < 30) {
      // Signed by the CA before the one the snapshot named: a control-plane replica that
      // has not seen the rotation step yet. Ask again shortly (a replica follows within
      // seconds).
      ++behind_signer_;
      retry_at = Clock::now() + std::chrono::seconds(1);
      log::Info("the certificate came from the previous CA; asking again", {{"signer", renewal_asked_for_}});
      continue;
    }
    if (st.ok()) {
      behind_signer_ = 0;
      retry_at.reset();
      continue;
    }
    // Retry well before it expires: a tenth of what is left, between 1 s and 30 s.
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(not_after - Clock::now());
    const auto wait = std::clamp(left / 10, std::chrono::milliseconds(1000), std::chrono::milliseconds(30000));
    retry_at = Clock::now() + wait;
    log::Warn("certificate renewal failed", {{"error", std::string(st.message())}, {"retry_in_ms", std::to_string(wait.count())},
                                             {"expires", Rfc3339(not_after)}});
  }
}

}  // namespace meshplug::agent::xds
