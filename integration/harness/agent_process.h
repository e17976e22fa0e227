// An agent as a real process that joins a ControlPlaneProcess with a join token (the
// documented way), with its ports read from its start line and its metrics readable.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "integration/harness/control_plane_process.h"
#include "integration/harness/process.h"

namespace meshplug::integration::harness {

struct AgentProcess {
  std::unique_ptr<Process> process;
  uint16_t outbound = 0, inbound = 0, admin = 0;

  // A metric's value from /stats, summed over the series whose line contains `filter`.
  long Metric(const std::string& name, const std::string& filter = "") const;
};

// Starts the agent of NS/NAME labelled app=APP (service account APP) in `dir`, joined to
// `cp`; nullopt with the reason in *error.
std::optional<AgentProcess> StartJoinedAgent(const ControlPlaneProcess& cp, const std::string& dir,
                                             const std::string& ns, const std::string& name, const std::string& app,
                                             std::string* error);
// How to run it beyond the defaults (127.0.0.1, ports picked by the system, no saved
// snapshot): `wrapper` goes first (e.g. `ip netns exec NS`), `flags` after the defaults
// (a later flag wins).
struct AgentRun {
  std::vector<std::string> wrapper;
  std::vector<std::string> flags;
};

// The same with a bootstrap file of the caller's, registering `labels` ("k=v,..."). Its
// identity and admin token files are `dir`/NAME.identity.pem and NAME.admin-token.
std::optional<AgentProcess> StartAgentWithBootstrap(const std::string& bootstrap, const std::string& dir,
                                                    const std::string& name, const std::string& labels,
                                                    std::string* error, const AgentRun& run = {});

}  // namespace meshplug::integration::harness
