// Every stored resource, decoded and indexed for translation. Built from the store and
// kept current from its change log.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "resources/object.h"
#include "control_plane/store/store.h"
#include "meshplug/v1/resources.pb.h"
#include "meshplug/v1/snapshot.pb.h"

namespace meshplug::control_plane::translate {

// "name.namespace" or "name" — the key of a namespaced object within its kind.
using ObjectKey = std::pair<std::string, std::string>;  // (namespace, name)

template <typename T>
struct Versioned {
  T object;
  int64_t create_revision = 0;  // orders "older" (PluginConfig conflicts)
};

uint64_t NextDestinationsGeneration();

// Whether objects of `kind` make the destinations that every agent receives: Namespaces,
// Services, Workloads, HTTPRoutes and the MeshConfig.
bool MakesDestinations(resources::Kind kind);

struct MeshState {
  int64_t revision = 0;
  std::map<std::string, mesh::v1::Namespace> namespaces;
  std::map<ObjectKey, mesh::v1::Service> services;
  std::map<ObjectKey, mesh::v1::Workload> workloads;
  std::optional<mesh::v1::MeshConfig> mesh_config;
  std::map<std::string, Versioned<mesh::v1::Plugin>> plugins;
  std::map<ObjectKey, mesh::v1::PluginChain> plugin_chains;
  std::map<ObjectKey, Versioned<mesh::v1::PluginConfig>> plugin_configs;
  std::map<ObjectKey, mesh::v1::HTTPRoute> http_routes;
  // Not a stored resource: the CA's, given to every agent.
  v1::TrustBundle trust;
  // Changes with every Namespace, Service, Workload, HTTPRoute or MeshConfig put or removed — what the
  // destinations (and egress scopes) are made of — and is unique across states, so that
  // equal values mean the same destinations.
  uint64_t destinations_generation = NextDestinationsGeneration();

  using ServiceEntry = std::pair<const ObjectKey, mesh::v1::Service>;

 private:
  using ServicesByLabel =
      std::map<std::tuple<std::string_view, std::string_view, std::string_view>, std::vector<const ServiceEntry*>>;
  // Which Services select which workloads, made once per change of services or workloads.
  // Points into both maps: a copy starts empty rather than pointing into the original.
  struct Selection {
    Selection() = default;
    Selection(const Selection&) {}
    Selection& operator=(const Selection&) {
      Clear();
      return *this;
    }
    void Clear() {
      built = false;
      by_label.clear();
      members.clear();
      selected.clear();
    }
    bool built = false;
    // Services by (namespace, one label of their selector, its value): a workload is
    // checked only against those that one of its own labels could satisfy, so that making
    // every Service's members costs O(workloads × labels), not O(workloads × Services).
    ServicesByLabel by_label;
    std::map<ObjectKey, std::vector<const mesh::v1::Workload*>> members;  // reachable ones
    std::map<ObjectKey, std::vector<const ObjectKey*>> selected;          // every one
  };
  mutable Selection selection_;
  const Selection& Selected() const;
  // Those of `by_label` that select `workload`, in no particular order.
  static std::vector<const ServiceEntry*> Selecting(const ServicesByLabel& by_label, const mesh::v1::Workload& workload);

 public:

  // Puts or deletes one stored object; false if the entry does not parse.
  bool Apply(const store::Event& event);
  bool Put(const store::Entry& entry);
  void Remove(const resources::Key& key);

  // The workloads a Service selects (its namespace, matching labels, reachable: address
  // and inbound port set), in key order. Not thread-safe (nor is the next): translation
  // runs on one thread.
  const std::vector<const mesh::v1::Workload*>& Members(const ObjectKey& service) const;
  // The keys of every workload a Service selects, reachable or not (their agents hold it as
  // their own service), in key order.
  const std::vector<const ObjectKey*>& SelectedWorkloads(const ObjectKey& service) const;
  // The Services of `workload`'s namespace that select it, in key order.
  std::vector<const ServiceEntry*> ServicesSelecting(const mesh::v1::Workload& workload) const;

  bool plugins_enabled() const {
    return mesh_config && mesh_config->spec().feature_flags().enable_plugin_policy();
  }
};

// Loads every object of the store; the state's revision is the store's at that moment.
absl::StatusOr<MeshState> LoadMeshState(store::Store& store);

}  // namespace meshplug::control_plane::translate
