// What `-f` names: files, folders (their .yaml/.yml/.json files, recursively, in name
// order) and "-" for stdin.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "meshplug/v1/admin.pb.h"

namespace meshplug::cli {

absl::StatusOr<std::vector<v1::Manifest>> ReadManifests(const std::vector<std::string>& paths);

}  // namespace meshplug::cli
