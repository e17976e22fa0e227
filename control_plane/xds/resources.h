// A snapshot as xDS resources: each encoded once into an Any, named, and versioned by the
// hash of its bytes. Identical resources of different agents share one encoding.
#pragma once

#include <grpcpp/support/slice.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/xds_types.h"
#include "meshplug/v1/snapshot.pb.h"

namespace meshplug::control_plane::xds {

struct EncodedResource {
  std::string name;
  std::string version;  // ResourceVersion of the message
  // The google.protobuf.Any of the message, serialised once; responses reference it.
  grpc::Slice any;
  size_t value_offset = 0;  // where the message's own bytes start in `any`

  std::string_view Value() const;
  std::string_view AnyBytes() const { return {reinterpret_cast<const char*>(any.begin()), any.size()}; }
};
using ResourcePtr = std::shared_ptr<const EncodedResource>;

// A slice that owns `bytes` (moved, not copied).
grpc::Slice SliceOwning(std::string bytes);

// One agent's resources: type URL → name → resource, with a version per type. Those it
// shares with other agents (the destinations) stay in `base`, one copy for all of them:
// the agent's own hold only what is its own (a name in both is the agent's).
// Envoy's types (envoy_resources.h) are translated from the destinations (`base`, shared by
// the agents of one egress scope) the first time a stream asks for one of them, and kept
// with them: only clients that subscribe pay, once per change.
struct AgentResources {
  using Named = std::map<std::string, ResourcePtr>;

  std::string version;  // SnapshotVersion of type_versions (meshplug's types)
  std::map<std::string, Named> own;
  std::shared_ptr<const AgentResources> base;
  std::map<std::string, std::string> type_versions;

  // The resource `name` of `type_url` (meshplug's or Envoy's), or nullptr.
  const EncodedResource* Find(const std::string& type_url, const std::string& name) const;
  // Each resource of `type_url` in name order.
  void ForEach(const std::string& type_url, const std::function<void(const std::string&, const ResourcePtr&)>& f) const;
  // All resources of `type_url` (a copy of the pointers, for tests).
  Named Of(const std::string& type_url) const;
  // The version of `type_url`'s resources, a type this server serves.
  const std::string& TypeVersion(const std::string& type_url) const;

  // The resources of `type_url` as a layer shared with other agents (for meshplug's types
  // null when the base has none of them) and the agent's own on top, for a response that
  // may send them in any order; nullopt when one of the agent's own replaces a shared one.
  struct Parts {
    const AgentResources* shared = nullptr;
    const Named* own = nullptr;  // never null
  };
  std::optional<Parts> SharedAndOwn(const std::string& type_url) const;
  // This layer's own resources of `type_url` as a DiscoveryResponse's `resources` entries,
  // which `frame` (ResponseBytes::AddLayer's) makes the first time; kept, so that every
  // agent over a shared layer sends them as one slice.
  const grpc::Slice& SotwEntries(const std::string& type_url,
                                 const std::function<grpc::Slice(const Named&)>& frame) const;

 private:
  const AgentResources& Layer(const std::string& type_url) const;
  mutable std::once_flag envoy_once_;
  mutable std::unique_ptr<const AgentResources> envoy_;
  mutable std::mutex sotw_entries_mu_;
  mutable std::map<std::string, grpc::Slice> sotw_entries_;  // by type URL
};

// Shares encodings between agents: the same bytes are kept once while anyone uses them.
class ResourceInterner {
 public:
  ResourcePtr Intern(const std::string& name, const google::protobuf::Message& msg);
  size_t size();

 private:
  // A resource is found by a fast hash of its bytes and then compared whole, so that only
  // bytes not seen yet are versioned (SHA-256): most of an agent's translation is what it
  // was, and agents share most of their resources.
  struct Key {
    const google::protobuf::Descriptor* type;  // Endpoints{cluster: X} has the bytes of Cluster{name: X}
    std::string name;
    size_t bytes_hash;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const;
  };
  std::mutex mu_;
  std::unordered_multimap<Key, std::weak_ptr<const EncodedResource>, KeyHash> by_key_;
};

// The xDS resources of `snap` over those of `base` (if given; one level: a base has none
// of its own): the resources every agent
// shares, encoded once per change rather than once per agent. A resource of `snap`
// replaces the one of `base` with the same type and name. Resource names: "chains", the plugin's (its script), the service name (inbound
// ones "<name>|inbound", so an agent's own service and the same service as a destination
// are distinct), cluster names (an Endpoints page after the first "<cluster>#<page>"), and
// "agent".
//
// `previous`, the agent's resources before, spares hashing the type versions again: a type
// whose own resources are the same objects, over a base with the same version of the
// type, keeps its version.
std::shared_ptr<const AgentResources> ToResources(const v1::Snapshot& snap, ResourceInterner& interner,
                                                  std::shared_ptr<const AgentResources> base = nullptr,
                                                  const AgentResources* previous = nullptr);

// `agent`'s own resources over `base`, new shared resources: for a change that alters
// only what agents share (a workload joining or leaving changes endpoints), without
// translating the agent again. Only the types whose shared resources changed are versioned
// again.
std::shared_ptr<const AgentResources> Rebase(const AgentResources& agent, std::shared_ptr<const AgentResources> base);

// `agent`'s resources with `replacements` (resources of `type_url`) in place of its own of
// the same names, for a change of resources that are the same for every agent holding
// them (a Plugin's script), without translating the agent again; names it does not hold
// are left out. Only `type_url` is versioned again; with `base` (new shared resources),
// also the types whose shared resources changed: Rebase and Replace in one.
std::shared_ptr<const AgentResources> Replace(const AgentResources& agent, const std::string& type_url,
                                              const std::vector<ResourcePtr>& replacements,
                                              std::shared_ptr<const AgentResources> base = nullptr);

// Back from resources to a Snapshot (for config_dump and for agents).
v1::Snapshot ToSnapshot(const AgentResources& resources);

}  // namespace meshplug::control_plane::xds
