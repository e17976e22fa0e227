#include "control_plane/security/ca_rotation.h"

#include <algorithm>

#include "common/log.h"
#include "common/xds_types.h"
#include "common/strings.h"

namespace meshplug::control_plane::security {
namespace {

const char* PhaseName(CertificateAuthority::Phase p) {
  switch (p) {
    case CertificateAuthority::Phase::kStarted: return "started";
    case CertificateAuthority::Phase::kActivated: return "activated";
    case CertificateAuthority::Phase::kSteady: break;
  }
  return "steady";
}

// A step refused because `agents` have not caught up yet.
absl::Status Waiting(const google::protobuf::RepeatedPtrField<std::string>& agents, const char* what,
                     const char* risk) {
  return absl::FailedPreconditionError(Cat(agents.size(), " agent(s) ", what, " (", agents.Get(0),
                                           agents.size() > 1 ? ", ..." : "",
                                           "); they catch up within seconds: wait, or use --force and ", risk));
}

}  // namespace

CaRotation::CaRotation(CertificateAuthority& ca, std::function<std::vector<v1::AgentStatus>()> agents,
                       const xds::ConfigWatcher& configs, std::function<void(v1::TrustBundle)> publish)
    : ca_(ca), agents_(std::move(agents)), configs_(configs), publish_(std::move(publish)) {
  publish_(ca_.trust());
}

CaRotation::~CaRotation() { StopFollowing(); }

void CaRotation::StartFollowing(std::chrono::milliseconds every) { follower_.Start(every, [this] { FollowOnce(); }); }

void CaRotation::StopFollowing() { follower_.Stop(); }

void CaRotation::FollowOnce() {
  std::lock_guard lock(mu_);
  FollowLocked();
}

void CaRotation::FollowLocked() {
  auto changed = ca_.Reload();
  if (!changed.ok()) {
    log::Warn("cannot read the CA from the store", {{"error", std::string(changed.status().message())}});
    return;
  }
  if (!*changed) return;
  v1::TrustBundle trust = ca_.trust();
  log::Info("CA rotation stepped on another replica", {{"phase", PhaseName(ca_.phase())},
                                                       {"signer", trust.signer_key_id()}});
  publish_(std::move(trust));
}

std::string CaRotation::JoinRoots() const { return ca_.trust_bundle(); }

v1::CaStatus CaRotation::Status() const {
  v1::CaStatus s;
  s.set_phase(PhaseName(ca_.phase()));
  s.set_signer_key_id(ca_.trust().signer_key_id());
  for (const auto& d : ca_.Describe()) {
    auto* c = s.add_cas();
    c->set_key_id(d.key_id);
    c->set_subject(d.subject);
    c->set_expires(d.expires);
    c->set_role(d.role);
  }
  for (const auto& agent : agents_()) {
    // A disconnected agent comes back with the certificate it had: it counts too.
    if (agent.certificate_issuer() != s.signer_key_id() && !agent.certificate_issuer().empty()) {
      s.add_agents_not_on_signer(agent.connected() ? agent.agent() : agent.agent() + " (disconnected)");
    }
    // An xDS token's client (listed apart from the workload's agent) holds no certificate
    // and takes no trust from us.
    if (!agent.connected() || agent.identity().empty()) continue;
    // Synced: AgentSettings, which carries the trust, ACKed at the version of the agent's
    // latest resources (sent, or still waiting to be sent).
    const std::string& settings_url = xds_types::UrlOf<v1::AgentSettings>();
    bool synced = false;
    if (const xds::Resources latest = configs_.Get(agent.agent())) {
      const auto version = latest->type_versions.find(settings_url);
      const auto acked = std::find_if(agent.types().begin(), agent.types().end(),
                                      [&](const v1::TypeStatus& t) { return t.type_url() == settings_url; });
      synced = version != latest->type_versions.end() && acked != agent.types().end() &&
               acked->acked_version() == version->second;
    }
    if (!synced) s.add_agents_not_synced(agent.agent());
  }
  return s;
}

absl::StatusOr<v1::CaStatus> CaRotation::Run(const v1::RotateCaRequest& req) {
  // One step at a time, its trust published before the next: concurrent steps could
  // publish an older trust last.
  std::lock_guard lock(mu_);
  // From the state another replica may have stepped to a moment ago.
  FollowLocked();
  absl::Status st;
  if (req.step() == "start") {
    st = ca_.StartRotation(req.ca_cert_pem(), req.ca_key_pem());
  } else if (req.step() == "activate") {
    const v1::CaStatus before = Status();
    if (before.phase() == "started" && before.agents_not_synced_size() > 0 && !req.force()) {
      return Waiting(before.agents_not_synced(), "have not confirmed the snapshot with the new CA's root",
                     "they would refuse peers with new certificates");
    }
    st = ca_.ActivateRotation();
  } else if (req.step() == "finish") {
    const v1::CaStatus before = Status();
    if (before.phase() == "activated" && before.agents_not_on_signer_size() > 0 && !req.force()) {
      return Waiting(before.agents_not_on_signer(), "still hold a certificate of the old CA",
                     "they lose mTLS with their peers until they renew");
    }
    st = ca_.FinishRotation();
  } else if (!req.step().empty()) {
    return absl::InvalidArgumentError(Cat("step \"", req.step().substr(0, 64), "\": expected start, activate or finish"));
  }
  if (!st.ok()) return st;
  if (!req.step().empty()) {
    v1::TrustBundle trust = ca_.trust();
    log::Info("CA rotation", {{"step", req.step()}, {"signer", trust.signer_key_id()}});
    publish_(std::move(trust));
  }
  return Status();
}

}  // namespace meshplug::control_plane::security
