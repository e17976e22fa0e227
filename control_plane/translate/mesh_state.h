// Every stored resource, decoded and indexed for translation. Built from the store and
// kept current from its change log.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "control_plane/resources/object.h"
#include "control_plane/store/store.h"
#include "meshplug/v1/resources.pb.h"

namespace meshplug::translate {

// "name.namespace" or "name" — the key of a namespaced object within its kind.
using ObjectKey = std::pair<std::string, std::string>;  // (namespace, name)

template <typename T>
struct Versioned {
  T object;
  int64_t create_revision = 0;  // orders "older" (PluginConfig conflicts)
};

struct MeshState {
  int64_t revision = 0;
  std::map<std::string, mesh::v1::Namespace> namespaces;
  std::map<ObjectKey, mesh::v1::Service> services;
  std::map<ObjectKey, mesh::v1::Workload> workloads;
  std::optional<mesh::v1::MeshConfig> mesh_config;
  std::map<std::string, Versioned<mesh::v1::Plugin>> plugins;
  std::map<ObjectKey, mesh::v1::PluginChain> plugin_chains;
  std::map<ObjectKey, Versioned<mesh::v1::PluginConfig>> plugin_configs;

  // Puts or deletes one stored object; false if the entry does not parse.
  bool Apply(const store::Event& event);
  bool Put(const store::Entry& entry);
  void Remove(const resources::Key& key);

  bool plugins_enabled() const {
    return mesh_config && mesh_config->spec().feature_flags().enable_plugin_policy();
  }
};

// Loads every object of the store; the state's revision is the store's at that moment.
absl::StatusOr<MeshState> LoadMeshState(store::Store& store);

}  // namespace meshplug::translate
