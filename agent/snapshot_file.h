// Reads a Snapshot from a file, in JSON (proto3 JSON mapping) or protobuf text format.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "meshplug/v1/snapshot.pb.h"

namespace meshplug::agent {

// JSON when the first non-blank character is '{', text format otherwise.
absl::StatusOr<v1::Snapshot> ParseSnapshot(const std::string& content);
absl::StatusOr<v1::Snapshot> ReadSnapshotFile(const std::string& path);

}  // namespace meshplug::agent
