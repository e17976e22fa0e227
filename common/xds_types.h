// The resource types of an agent's snapshot and how their versions are computed. The
// control plane and the agent share this, so both name the same content with the same
// version (meshctl proxy config_dump and the agent's /config_dump agree) while each
// side computes it from per-resource hashes instead of re-encoding a whole snapshot.
#pragma once

#include <google/protobuf/message.h>

#include <map>
#include <string>
#include <vector>

namespace meshplug::xds_types {

inline constexpr const char* kTypePrefix = "type.googleapis.com/meshplug.v1.";
// The six type URLs in the order they are pushed: what others reference goes first
// (make before break), the chain set that names scripts last.
const std::vector<std::string>& TypeUrls();
std::string TypeUrl(const std::string& message_name);  // "ChainSet" → full URL

// The name of a snapshot resource, the same on both sides (state of the world sends no
// names): "agent" for AgentSettings, the chain set's name ("chains" when empty), a
// PluginScript's and a Cluster's name, an Endpoints' cluster, a Service's name with
// "|inbound" for the agent's own services. "" for other messages.
std::string ResourceName(const google::protobuf::Message& resource);

// 16 hex digits of the SHA-256 of the resource's deterministic encoding.
std::string ResourceVersion(const google::protobuf::Message& resource);
// The version of one type: a digest of its resources' names and versions.
std::string TypeVersion(const std::map<std::string, std::string>& name_versions);
// The version of a snapshot: a digest of the versions of all six types (a type missing
// from the map counts as empty).
std::string SnapshotVersion(const std::map<std::string, std::string>& type_versions);

}  // namespace meshplug::xds_types
