// The xDS resources an agent holds, by type and name, and the Snapshot they make.
//
// The control plane sends one agent's configuration as six resource types (type URLs
// `type.googleapis.com/meshplug.v1.<Message>`): AgentSettings "agent", PluginScript
// "<plugin>", Cluster and Endpoints by cluster name (a cluster's Endpoints pages after
// the first "<cluster>#<page>"), Service "<name>.<ns>" (its own services
// "<name>.<ns>|inbound"), ChainSet "chains". A ResourceSet collects them as
// responses arrive; it can be assembled into a Snapshot once nothing a resource
// references is missing (Missing() is empty).
#pragma once

#include <google/protobuf/any.pb.h>
#include <google/protobuf/message.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/xds_types.h"
#include "meshplug/v1/snapshot.pb.h"

namespace meshplug::agent::xds {

using xds_types::UrlOf;
// "ChainSet" from its URL, for logs and metrics (the URL itself if it is not ours).
std::string ShortType(const std::string& type_url);

class ResourceSet {
 public:
  struct Entry {
    std::string version;  // the control plane's version of the resource; may be empty (SotW)
    std::shared_ptr<const google::protobuf::Message> message;
  };
  using Named = std::map<std::string, Entry>;

  // Parses `any` as the message of `type_url`; an error when the type is unknown, the Any
  // holds another type or the bytes do not parse.
  static absl::StatusOr<std::shared_ptr<const google::protobuf::Message>> Decode(const std::string& type_url,
                                                                                 const google::protobuf::Any& any);

  void Put(const std::string& type_url, const std::string& name, Entry entry);
  void Remove(const std::string& type_url, const std::string& name);
  void ReplaceType(const std::string& type_url, Named resources);
  void SetTypeVersion(const std::string& type_url, const std::string& version);

  const Named& Of(const std::string& type_url) const;
  // The version_info of the latest response of the type (state of the world), or "".
  std::string TypeVersion(const std::string& type_url) const;
  // name → version of every resource of the type that has a version.
  std::map<std::string, std::string> Versions(const std::string& type_url) const;
  bool empty() const;
  size_t size() const;

  // What is still missing before Assemble(): one line per missing reference (the chain
  // set, a PluginScript a chain names, a Cluster a service routes to, and with
  // `endpoints` the Endpoints of each cluster); empty when the set is complete.
  std::vector<std::string> Missing(bool endpoints = true) const;
  // The clusters that have no Endpoints resource.
  std::vector<std::string> ClustersWithoutEndpoints() const;
  // Resources nothing references: scripts no chain names, clusters no service routes to,
  // endpoints of no cluster. The control plane sends none in a settled snapshot, so while
  // there are some, the rest of a push (the chain set or service naming them) is on its way.
  std::vector<std::string> Unreferenced() const;
  // The Snapshot of the set (complete or not), each list ordered by resource name, with
  // its content version (xds::SnapshotVersion over each resource's own hash, whatever
  // version the control plane sent with it).
  v1::Snapshot Assemble() const;

 private:
  std::map<std::string, Named> by_type_;
  std::map<std::string, std::string> type_versions_;
};

}  // namespace meshplug::agent::xds
