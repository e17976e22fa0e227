// The last good configuration on disk, so an agent that starts while the control plane is
// unreachable serves what it served before, and resumes its xDS stream from it.
//
// One JSON file:
//   {"format": "meshplug-agent-snapshot-cache/1",
//    "agent": "<namespace>/<name>",
//    "version": "<snapshot version>",
//    "types": [<DeltaDiscoveryResponse per type: type_url, system_version_info and the
//               resources with name, version and the resource as JSON>, ...]}
// Written atomically: a temporary file in the same directory, fsync, rename, fsync of the
// directory. A reader sees the old file or the new one, never a torn one.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "agent/xds/xds_resources.h"

namespace meshplug::agent::xds {

struct SavedConfig {
  std::string agent;  // "<namespace>/<name>" it was saved by
  xds::ResourceSet resources;
};

// `version` is the assembled version of `resources` (the caller has it already).
absl::Status SaveConfig(const std::string& path, const std::string& agent, const xds::ResourceSet& resources,
                               const std::string& version);
absl::StatusOr<SavedConfig> LoadSavedConfig(const std::string& path);

}  // namespace meshplug::agent::xds
