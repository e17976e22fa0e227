// Envoy's AggregatedDiscoveryService for meshplug's resource types, state of the world and
// incremental, on gRPC's callback API: a stream is a reactor, never a thread. A stream
// serves only the workload its credentials prove it is (NodeAuthorizer); another stream
// of the same workload replaces its registration (the newest one's labels, address and
// ports are what is stored), never merges with it.
#pragma once

#include <string>

#include "control_plane/xds/agent_lifecycle.h"
#include "control_plane/xds/agent_registry.h"
#include "control_plane/xds/config_watcher.h"
#include "control_plane/xds/node_authorizer.h"
#include "envoy/service/discovery/v3/ads.grpc.pb.h"

namespace meshplug::control_plane::xds {

// Raw methods: requests are parsed here, and responses go out as the bytes ResponseBytes
// assembled, so gRPC never re-serialises a shared resource into each agent's response.
using RawAdsService = envoy::service::discovery::v3::AggregatedDiscoveryService::
    WithRawCallbackMethod_StreamAggregatedResources<envoy::service::discovery::v3::AggregatedDiscoveryService::
                                                        WithRawCallbackMethod_DeltaAggregatedResources<
                                                            envoy::service::discovery::v3::AggregatedDiscoveryService::Service>>;

class AdsService final : public RawAdsService {
 public:
  AdsService(ConfigWatcher& configs, AgentRegistry& registry, AgentLifecycle& lifecycle,
             const NodeAuthorizer& authorizer)
      : configs_(configs), registry_(registry), lifecycle_(lifecycle), authorizer_(authorizer) {}

  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* StreamAggregatedResources(
      grpc::CallbackServerContext* ctx) override;
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* DeltaAggregatedResources(
      grpc::CallbackServerContext* ctx) override;

 private:
  ConfigWatcher& configs_;
  AgentRegistry& registry_;
  AgentLifecycle& lifecycle_;
  const NodeAuthorizer& authorizer_;
};

}  // namespace meshplug::control_plane::xds
