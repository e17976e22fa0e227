// The CA rotation as the admin API runs it: each step changes the CA, publishes the new
// trust to every agent, and finishing waits until connected agents hold certificates of
// the new CA (they renew at once after activation). Control-plane replicas sharing a
// store follow each other's steps: each reloads the CA from the store every interval and
// publishes the trust when it changed; the checks before a step cover every replica's
// agents.
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/periodic.h"
#include "control_plane/security/certificate_authority.h"
#include "control_plane/xds/config_watcher.h"
#include "meshplug/v1/admin.pb.h"

namespace meshplug::control_plane::security {

class CaRotation {
 public:
  // `publish` hands the CA's trust to the controller (at construction, and after each
  // step); `configs` has each agent's latest resources, to tell which agents ACKed them.
  // `agents`: every agent's status, on every replica.
  CaRotation(CertificateAuthority& ca, std::function<std::vector<v1::AgentStatus>()> agents,
             const xds::ConfigWatcher& configs, std::function<void(v1::TrustBundle)> publish);
  ~CaRotation();

  // Follows steps taken on other replicas: reloads the CA every `every`.
  void StartFollowing(std::chrono::milliseconds every);
  void StopFollowing();

  // Runs `req.step` ("start", "activate", "finish"; "" only reports) and reports.
  absl::StatusOr<v1::CaStatus> Run(const v1::RotateCaRequest& req);
  v1::CaStatus Status() const;

  // The roots an agent joining now needs: those of the CAs trusted now (the serving
  // certificate is always the current CA's).
  std::string JoinRoots() const;

 private:
  void FollowOnce();    // a reload, and the trust published when the CA changed
  void FollowLocked();  // mu_ held

  CertificateAuthority& ca_;
  const std::function<std::vector<v1::AgentStatus>()> agents_;
  const xds::ConfigWatcher& configs_;
  const std::function<void(v1::TrustBundle)> publish_;
  std::mutex mu_;  // one step (or reload) at a time

  Periodic follower_;
};

}  // namespace meshplug::control_plane::security
