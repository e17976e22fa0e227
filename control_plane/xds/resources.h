// A snapshot as xDS resources: each encoded once into an Any, named, and versioned by the
// hash of its bytes. Identical resources of different agents share one encoding.
#pragma once

#include <google/protobuf/any.pb.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "meshplug/v1/snapshot.pb.h"

namespace meshplug::xds {

inline constexpr const char* kTypePrefix = "type.googleapis.com/meshplug.v1.";
// The resource types of an agent's snapshot, in the order they are pushed: what others
// reference goes first (make before break), the chain set that names scripts last.
const std::vector<std::string>& TypeUrls();
std::string TypeUrl(const std::string& message_name);  // "ChainSet" → full URL

struct EncodedResource {
  std::string name;
  std::string version;  // hex hash of the encoded bytes
  google::protobuf::Any any;
};
using ResourcePtr = std::shared_ptr<const EncodedResource>;

// One agent's resources: type URL → name → resource, with a version per type.
struct AgentResources {
  std::string version;  // the snapshot's
  std::map<std::string, std::map<std::string, ResourcePtr>> by_type;
  std::map<std::string, std::string> type_versions;

  const std::map<std::string, ResourcePtr>& Of(const std::string& type_url) const;
};

// Shares encodings between agents: the same bytes are kept once while anyone uses them.
class ResourceInterner {
 public:
  ResourcePtr Intern(const std::string& name, const google::protobuf::Message& msg);
  size_t size();

 private:
  std::mutex mu_;
  std::unordered_map<std::string, std::weak_ptr<const EncodedResource>> by_key_;  // name + hash
};

// The xDS resources of `snap`. Resource names: "chains", "<plugin>@<hash>", the service
// name (inbound ones "<name>|inbound", so an agent's own service and the same service as a
// destination are distinct), cluster names, and "agent".
std::shared_ptr<const AgentResources> ToResources(const v1::Snapshot& snap, ResourceInterner& interner);

// Back from resources to a Snapshot (for config_dump and for agents).
v1::Snapshot ToSnapshot(const AgentResources& resources);

}  // namespace meshplug::xds
