// The resource types of an agent's snapshot: one table that both sides use to name,
// decode, version and assemble them. The control plane and the agent compute the same
// versions from per-resource hashes, so both config dumps name the same content with the
// same version without re-encoding a whole snapshot.
#pragma once

#include <google/protobuf/message.h>

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "meshplug/v1/snapshot.pb.h"

namespace meshplug::xds_types {

inline constexpr std::string_view kTypePrefix = "type.googleapis.com/meshplug.v1.";

// The Node.user_agent_name (and HTTP user-agent) of meshplug's agent.
inline constexpr const char* kAgentUserAgentName = "meshplug-agent";
// The Node.client_features entry of an agent that tells a PluginScript's versions apart by
// their source (the control plane replaces a script in place, under its plugin's name).
inline constexpr const char* kScriptsByContentFeature = "meshplug.scripts-by-content";

struct ResourceType {
  std::string message;  // "ChainSet"
  std::string url;      // "type.googleapis.com/meshplug.v1.ChainSet"
  const google::protobuf::Message* prototype;
  const google::protobuf::FieldDescriptor* field;  // where a Snapshot holds resources of this type
  // The resource's name, the same on both sides (state of the world sends no names).
  std::string (*name_of)(const google::protobuf::Message&);
};

// The six types in the order they are pushed: what others reference goes first (make
// before break), the chain set that names scripts last.
const std::vector<ResourceType>& ResourceTypes();
// Their URLs, in the same order.
const std::vector<std::string>& TypeUrls();
// nullptr for a URL that is not one of ours.
const ResourceType* FindType(std::string_view url);
// The type of a message (must be one of the six).
const ResourceType& TypeOf(const google::protobuf::Descriptor* descriptor);
template <typename Message>
const std::string& UrlOf() {
  return TypeOf(Message::descriptor()).url;
}

// Resource names: "agent" for AgentSettings, the chain set's name ("chains" when empty),
// a PluginScript's and a Cluster's name, an Endpoints' cluster (with "#<page>" for pages
// after the first), a Service's name with "|inbound" for the agent's own services.
std::string ResourceName(const google::protobuf::Message& resource);

// Every resource of a snapshot, in type order.
void ForEachResource(const v1::Snapshot& snapshot,
                     const std::function<void(const ResourceType&, const google::protobuf::Message&)>& fn);
// A new resource of `type` in `snapshot` (the settings or chain set message itself for
// the two singular types), to fill in.
google::protobuf::Message* AddResource(v1::Snapshot& snapshot, const ResourceType& type);

// 16 hex digits of the SHA-256 of the resource's deterministic encoding (`bytes`).
std::string ResourceVersion(const google::protobuf::Message& resource);
std::string ResourceVersionOfBytes(std::string_view bytes);
// "type.googleapis.com/<full name>": the type URL of any message (Envoy's too).
std::string AnyTypeUrl(const google::protobuf::Descriptor& descriptor);
// The version of one type: a digest of its resources' names and versions.
std::string TypeVersion(const std::map<std::string, std::string>& name_versions);
// The same, fed one resource at a time in name order (no map to build).
class TypeVersionBuilder {
 public:
  void Add(std::string_view name, std::string_view version);
  std::string Done() const;

 private:
  std::string digest_;
};
// The version of a snapshot: a digest of the versions of all six types (a type missing
// from the map counts as empty).
std::string SnapshotVersion(const std::map<std::string, std::string>& type_versions);

}  // namespace meshplug::xds_types
