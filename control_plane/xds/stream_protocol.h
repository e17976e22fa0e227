// The two xDS protocols of one ADS stream, apart from gRPC's reactors and threads: what a
// request changes and which response goes out next. The stream reactor (ads_service.cc) owns one per stream,
// once the agent is identified, and calls it under the stream's lock; the fuzzer drives
// the same code with request sequences. A response is its wire bytes (ResponseBytes):
// the resources in it are references to their shared encodings, not copies.
#pragma once

#include <deque>
#include <map>
#include <set>
#include <string>

#include <grpcpp/support/byte_buffer.h>

#include "control_plane/xds/agent_registry.h"
#include "control_plane/xds/config_watcher.h"
#include "envoy/service/discovery/v3/discovery.pb.h"

namespace meshplug::control_plane::xds {

// An agent's subscriptions are bounded: beyond this many names of one type, further names
// are ignored (and logged), so one agent cannot grow the server's memory without end.
inline constexpr size_t kMaxSubscribedNames = 10'000;

// What both protocols share: the agent, its current resources, nonces.
class ProtocolBase {
 public:
  // `envoy_types_only`: the stream's credentials allow Envoy's types and not meshplug's
  // (which hold plugin scripts and PluginConfig values).
  ProtocolBase(AgentRegistry& registry, std::string agent, bool envoy_types_only)
      : registry_(registry), agent_(std::move(agent)), envoy_types_only_(envoy_types_only) {}

  const std::string& agent() const { return agent_; }
  bool envoy_types_only() const { return envoy_types_only_; }

 protected:
  // Requests for types we do not serve, or that the stream may not read, get no answer.
  bool Served(const std::string& type) const;
  std::string NextNonce() { return std::to_string(++nonce_counter_); }
  // Adds `name` to `names` unless the bound is reached; false when it was not added.
  bool Subscribe(std::set<std::string>& names, const std::string& name, const std::string& type);

  AgentRegistry& registry_;
  const std::string agent_;
  Resources resources_;

 private:
  const bool envoy_types_only_;
  uint64_t nonce_counter_ = 0;
};

// State of the world: every response carries all subscribed resources of its type.
class SotwProtocol : public ProtocolBase {
 public:
  using Request = envoy::service::discovery::v3::DiscoveryRequest;
  using Response = envoy::service::discovery::v3::DiscoveryResponse;
  static constexpr const char* kName = "sotw";
  using ProtocolBase::ProtocolBase;

  void Handle(const Request& req);
  void SetResources(Resources resources);
  // Sets `out` to the next response's bytes; false when there is nothing to send.
  bool NextResponse(grpc::ByteBuffer* out);

 private:
  struct TypeState {
    bool subscribed = false;
    bool wildcard = false;
    bool explicit_names_seen = false;
    std::set<std::string> names;
    std::string nonce;         // of the last response
    std::string sent_version;  // of the last response
    bool send = false;
  };
  std::map<std::string, TypeState> types_;
};

// Incremental: responses carry what changed and what was removed, per resource version.
class DeltaProtocol : public ProtocolBase {
 public:
  using Request = envoy::service::discovery::v3::DeltaDiscoveryRequest;
  using Response = envoy::service::discovery::v3::DeltaDiscoveryResponse;
  static constexpr const char* kName = "delta";
  using ProtocolBase::ProtocolBase;

  void Handle(const Request& req);
  void SetResources(Resources resources);
  // Sets `out` to the next response's bytes; false when there is nothing to send.
  bool NextResponse(grpc::ByteBuffer* out);

 private:
  struct TypeState {
    bool wildcard = false;
    std::set<std::string> names;
    std::map<std::string, std::string> client_versions;  // what the agent has, as far as we know
    std::set<std::string> told_missing;                  // subscribed names reported absent
    std::deque<std::pair<std::string, std::string>> recent_nonces;  // nonce, system version; newest last
    bool send = false;
    // The type's version in the resources of the last pass over it (NextResponse), after
    // which the agent had them all: new resources flag only the types whose version moved,
    // so that a change sends no other type and diffs none.
    std::string synced_version;
    // The agent resumed with versions of its own (from another replica, say) and has not
    // been sent this type yet.
    bool resumed = false;
  };
  std::map<std::string, TypeState> types_;
};

}  // namespace meshplug::control_plane::xds
