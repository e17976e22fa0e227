// Envoy's own resource types, for xDS clients that are not meshplug agents (gRPC's
// built-in xDS client, Envoy): translated from an agent's meshplug snapshot, so they say
// what its destinations say, scoped the same way.
//
// Per destination Service port: a Listener "<service>:<port>" (what the target
// xds:///<name>.<namespace>:<port> asks for) holding an API listener whose
// HttpConnectionManager names the RouteConfiguration "<service>:<port>@<revision>"
// over ADS (see v1::Service.revision); its one
// virtual host carries the Service's routes for that port (path and header matches,
// weighted splits, timeouts, retries, faults). Each cluster of those routes is an
// EDS Cluster, and its endpoints a ClusterLoadAssignment, both named as meshplug names
// the cluster ("<service>|<port>"). Plugins are not part of any of it: nothing runs them
// in a client that is not an agent.
#pragma once

#include <google/protobuf/message.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "meshplug/v1/snapshot.pb.h"

namespace meshplug::control_plane::xds {

// The four type URLs in push order (make before break): Cluster, ClusterLoadAssignment,
// Listener, RouteConfiguration.
const std::vector<std::string>& EnvoyTypeUrls();
bool IsEnvoyType(std::string_view type_url);

// Every Envoy resource of `snapshot`'s destinations, with its name.
void ForEachEnvoyResource(const v1::Snapshot& snapshot,
                          const std::function<void(const std::string& name, const google::protobuf::Message&)>& fn);

}  // namespace meshplug::control_plane::xds
