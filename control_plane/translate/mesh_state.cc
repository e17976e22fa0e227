#include "control_plane/translate/mesh_state.h"

#include "common/hash.h"
#include "common/strings.h"
#include "control_plane/translate/selector.h"

namespace meshplug::translate {
namespace {

template <typename T>
bool Parse(const store::Entry& e, T& out) {
  if (!out.ParseFromString(e.value)) return false;
  out.mutable_metadata()->set_resource_version(e.resource_version);
  return true;
}

}  // namespace

bool MeshState::Put(const store::Entry& e) {
  const auto& k = e.key;
  if (k.kind == "Service" || k.kind == "Workload") members_.map.clear();
  const ObjectKey ok{k.ns, k.name};
  if (k.kind == "Namespace") return Parse(e, namespaces[k.name]);
  if (k.kind == "Service") return Parse(e, services[ok]);
  if (k.kind == "Workload") return Parse(e, workloads[ok]);
  if (k.kind == "MeshConfig") return Parse(e, mesh_config.emplace());
  if (k.kind == "Plugin") {
    auto& v = plugins[k.name];
    v.create_revision = e.create_revision;
    if (!Parse(e, v.object)) return false;
    v.script_name = Cat(k.name, "@", Sha256Hex(v.object.spec().script()).substr(0, 16));
    return true;
  }
  if (k.kind == "PluginChain") return Parse(e, plugin_chains[ok]);
  if (k.kind == "PluginConfig") {
    auto& v = plugin_configs[ok];
    v.create_revision = e.create_revision;
    return Parse(e, v.object);
  }
  return false;
}

void MeshState::Remove(const resources::Key& k) {
  const ObjectKey ok{k.ns, k.name};
  if (k.kind == "Service" || k.kind == "Workload") members_.map.clear();
  if (k.kind == "Namespace") namespaces.erase(k.name);
  if (k.kind == "Service") services.erase(ok);
  if (k.kind == "Workload") workloads.erase(ok);
  if (k.kind == "MeshConfig") mesh_config.reset();
  if (k.kind == "Plugin") plugins.erase(k.name);
  if (k.kind == "PluginChain") plugin_chains.erase(ok);
  if (k.kind == "PluginConfig") plugin_configs.erase(ok);
}

bool MeshState::Apply(const store::Event& event) {
  revision = std::max(revision, event.revision);
  if (event.type == store::Event::Type::kDelete) {
    Remove(event.entry.key);
    return true;
  }
  return Put(event.entry);
}

const std::vector<const mesh::v1::Workload*>& MeshState::Members(const ObjectKey& service) const {
  auto [slot, fresh] = members_.map.try_emplace(service);
  if (!fresh) return slot->second;
  auto svc = services.find(service);
  if (svc == services.end()) return slot->second;
  const auto& selector = svc->second.spec().selector();
  for (auto it = workloads.lower_bound({service.first, ""}); it != workloads.end() && it->first.first == service.first;
       ++it) {
    const auto& wl = it->second;
    if (wl.spec().address().empty() || wl.spec().inbound_port() == 0) continue;
    if (SelectorMatches(selector, wl.metadata().labels())) slot->second.push_back(&wl);
  }
  return slot->second;
}

absl::StatusOr<MeshState> LoadMeshState(store::Store& store) {
  MeshState state;
  state.revision = store.Revision();
  auto all = store.List("", "");
  if (!all.ok()) return all.status();
  for (const auto& e : *all) {
    if (!state.Put(e)) return absl::DataLossError("stored " + e.key.ToString() + " does not parse");
  }
  return state;
}

}  // namespace meshplug::translate
