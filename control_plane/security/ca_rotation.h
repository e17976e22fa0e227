// The CA rotation as the admin API runs it: each step changes the CA, publishes the new
// trust to every agent, and finishing waits until connected agents hold certificates of
// the new CA (they renew at once after activation).
#pragma once

#include <functional>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "control_plane/security/certificate_authority.h"
#include "control_plane/xds/agent_registry.h"
#include "control_plane/xds/config_watcher.h"
#include "meshplug/v1/admin.pb.h"

namespace meshplug::control_plane::security {

class CaRotation {
 public:
  // `publish` hands the CA's trust to the controller (at construction, and after each
  // step); `configs` has each agent's latest resources, to tell which agents ACKed them.
  CaRotation(CertificateAuthority& ca, const xds::AgentRegistry& registry, const xds::ConfigWatcher& configs,
             std::function<void(v1::TrustBundle)> publish);

  // Runs `req.step` ("start", "activate", "finish"; "" only reports) and reports.
  absl::StatusOr<v1::CaStatus> Run(const v1::RotateCaRequest& req);
  v1::CaStatus Status() const;

  // The roots an agent joining now needs: those of the CAs trusted now (the serving
  // certificate is always the current CA's).
  std::string JoinRoots() const;

 private:
  CertificateAuthority& ca_;
  const xds::AgentRegistry& registry_;
  const xds::ConfigWatcher& configs_;
  const std::function<void(v1::TrustBundle)> publish_;
  std::mutex mu_;  // one step at a time
};

}  // namespace meshplug::control_plane::security
