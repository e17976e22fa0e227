// The two xDS variants as the agent speaks them: how to subscribe, how to answer a
// response (ACK/NACK) and how a response's resources merge into what was received.
// DeltaOps is incremental (resources by name and version, removals by name); SotwOps is
// state of the world (every response holds all resources of its type).
#pragma once

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "agent/xds/update_assembler.h"
#include "agent/xds/xds_resources.h"
#include "common/strings.h"
#include "envoy/service/discovery/v3/discovery.pb.h"

namespace meshplug::agent::xds {

namespace discovery = envoy::service::discovery::v3;

// NACK code: the configuration is invalid for this agent.
inline constexpr int kInvalidArgument = 3;

// A NACK carries the reason in error_detail; an ACK has none.
template <typename Req>
inline void SetNackReason(Req& r, const std::optional<std::string>& error) {
  if (!error) return;
  r.mutable_error_detail()->set_code(kInvalidArgument);
  r.mutable_error_detail()->set_message(*error);
}

// Incremental xDS: resources by name and version, removals by name.
struct DeltaOps {
  using Req = discovery::DeltaDiscoveryRequest;
  using Resp = discovery::DeltaDiscoveryResponse;
  static constexpr const char* kName = "delta";
  static constexpr const char* kMethod = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";
  static Req Subscribe(const std::string& type, const envoy::config::core::v3::Node* node,
                       const ResourceSet& have) {
    Req r;
    if (node) *r.mutable_node() = *node;
    r.set_type_url(type);
    r.add_resource_names_subscribe("*");
    for (const auto& [name, version] : have.Versions(type)) (*r.mutable_initial_resource_versions())[name] = version;
    return r;
  }
  static Req AnswerRequest(const Answer& a) {
    Req r;
    r.set_type_url(a.type_url);
    r.set_response_nonce(a.nonce);
    SetNackReason(r, a.error);
    return r;
  }
  static const std::string& Type(const Resp& r) { return r.type_url(); }
  static const std::string& Nonce(const Resp& r) { return r.nonce(); }
  static const std::string& Version(const Resp& r) { return r.system_version_info(); }
  static size_t Count(const Resp& r) { return r.resources_size(); }
  static size_t Removed(const Resp& r) { return r.removed_resources_size() + r.removed_resource_names_size(); }

  // All or nothing: a resource that does not decode rejects the whole response.
  static absl::Status Merge(const Resp& resp, ResourceSet& into) {
    std::vector<std::pair<std::string, ResourceSet::Entry>> puts;
    for (const auto& r : resp.resources()) {
      if (r.name().empty())
        return absl::InvalidArgumentError(Cat("a ", ShortType(resp.type_url()), " resource has no name"));
      auto msg = ResourceSet::Decode(resp.type_url(), r.resource());
      if (!msg.ok()) return absl::InvalidArgumentError(Cat(r.name(), ": ", std::string(msg.status().message())));
      puts.emplace_back(r.name(), ResourceSet::Entry{r.version(), *std::move(msg)});
    }
    for (auto& [name, entry] : puts) into.Put(resp.type_url(), name, std::move(entry));
    for (const auto& name : resp.removed_resources()) into.Remove(resp.type_url(), name);
    for (const auto& name : resp.removed_resource_names()) into.Remove(resp.type_url(), name.name());
    into.SetTypeVersion(resp.type_url(), resp.system_version_info());
    return absl::OkStatus();
  }
};

// State of the world: every response holds all resources of its type.
struct SotwOps {
  using Req = discovery::DiscoveryRequest;
  using Resp = discovery::DiscoveryResponse;
  static constexpr const char* kName = "sotw";
  static constexpr const char* kMethod = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
  static Req Subscribe(const std::string& type, const envoy::config::core::v3::Node* node,
                       const ResourceSet& have) {
    Req r;
    if (node) *r.mutable_node() = *node;
    r.set_type_url(type);
    r.add_resource_names("*");
    r.set_version_info(have.TypeVersion(type));
    return r;
  }
  // An ACK carries the version it accepts; a NACK the version still in use.
  static Req AnswerRequest(const Answer& a) {
    Req r;
    r.set_type_url(a.type_url);
    r.add_resource_names("*");
    r.set_response_nonce(a.nonce);
    r.set_version_info(a.error ? a.running_version : a.version);
    SetNackReason(r, a.error);
    return r;
  }
  static const std::string& Type(const Resp& r) { return r.type_url(); }
  static const std::string& Nonce(const Resp& r) { return r.nonce(); }
  static const std::string& Version(const Resp& r) { return r.version_info(); }
  static size_t Count(const Resp& r) { return r.resources_size(); }
  static size_t Removed(const Resp&) { return 0; }

  static absl::Status Merge(const Resp& resp, ResourceSet& into) {
    ResourceSet::Named named;
    for (const auto& any : resp.resources()) {
      auto msg = ResourceSet::Decode(resp.type_url(), any);
      if (!msg.ok()) return msg.status();
      std::string name = xds_types::ResourceName(**msg);
      if (name.empty())
        return absl::InvalidArgumentError(Cat("a ", ShortType(resp.type_url()), " resource has no name"));
      if (named.count(name)) {
        return absl::InvalidArgumentError(
            Cat("two ", ShortType(resp.type_url()), " resources are named \"", name, "\""));
      }
      named[name] = ResourceSet::Entry{"", *std::move(msg)};
    }
    into.ReplaceType(resp.type_url(), std::move(named));
    into.SetTypeVersion(resp.type_url(), resp.version_info());
    return absl::OkStatus();
  }
};

}  // namespace meshplug::agent::xds
