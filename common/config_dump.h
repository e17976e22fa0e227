#pragma once

#include <string>

#include "meshplug/v1/snapshot.pb.h"

namespace meshplug {

// The config_dump document of an agent's snapshot, the same from the agent's /config_dump
// and from `meshctl proxy config_dump`: the version, the four chains as ordered module
// names (like osm-edge's `.Chains."outbound-http"`), then the whole snapshot. Snapshots
// carry no secrets yet (no mTLS); once they do, this is where they must be redacted.
std::string ConfigDumpJson(const v1::Snapshot& snapshot);

// The four chains of `snapshot` as a JSON object of ordered module names.
std::string ChainsJson(const v1::Snapshot& snapshot);

}  // namespace meshplug
