// Strict YAML → protobuf decoding, the way `kubectl apply` in strict mode reads a
// manifest: fields are matched by their JSON names, and an unknown field, a wrong type or
// an out-of-range number is an error naming the field path and the line.
#pragma once

#include <google/protobuf/message.h>
#include <yaml-cpp/yaml.h>

#include <string>

#include "absl/status/status.h"

namespace meshplug::resources {

// `path` prefixes field names in errors ("spec" → "spec.chains[0].name").
absl::Status DecodeYaml(const YAML::Node& node, google::protobuf::Message& msg,
                        const std::string& path = "");

// " (line N)" for a node read from text, "" otherwise.
std::string LineOf(const YAML::Node& node);

}  // namespace meshplug::resources
