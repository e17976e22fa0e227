#include "agent/snapshot_file.h"

#include <google/protobuf/text_format.h>
#include <google/protobuf/util/json_util.h>

#include <fstream>
#include <sstream>

namespace meshplug::agent {

absl::StatusOr<v1::Snapshot> ParseSnapshot(const std::string& content) {
  v1::Snapshot snapshot;
  size_t first = content.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && content[first] == '{') {
    auto status = google::protobuf::util::JsonStringToMessage(content, &snapshot);
    if (!status.ok()) {
      return absl::InvalidArgumentError("snapshot JSON: " + status.ToString());
    }
    return snapshot;
  }
  if (!google::protobuf::TextFormat::ParseFromString(content, &snapshot)) {
    return absl::InvalidArgumentError("snapshot text format does not parse (see the log above)");
  }
  return snapshot;
}

absl::StatusOr<v1::Snapshot> ReadSnapshotFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError("cannot read snapshot file " + path);
  std::ostringstream content;
  content << in.rdbuf();
  absl::StatusOr<v1::Snapshot> snapshot = ParseSnapshot(content.str());
  if (!snapshot.ok()) {
    return absl::InvalidArgumentError(path + ": " + std::string(snapshot.status().message()));
  }
  return snapshot;
}

}  // namespace meshplug::agent
