#include "control_plane/translate/mesh_state.h"

#include <algorithm>
#include <atomic>

#include "control_plane/translate/selector.h"

namespace meshplug::control_plane::translate {
namespace {

using resources::Kind;

template <typename T>
bool Parse(const store::Entry& e, T& out) {
  if (!out.ParseFromString(e.value)) return false;
  out.mutable_metadata()->set_resource_version(e.resource_version);
  return true;
}

}  // namespace

uint64_t NextDestinationsGeneration() {
  static std::atomic<uint64_t> next{0};
  return ++next;
}

bool MakesDestinations(Kind kind) {
  return kind == Kind::kNamespace || kind == Kind::kService || kind == Kind::kWorkload || kind == Kind::kMeshConfig ||
         kind == Kind::kHTTPRoute;
}

bool MeshState::Put(const store::Entry& e) {
  const auto& k = e.key;
  const ObjectKey ok{k.ns, k.name};
  if (MakesDestinations(k.kind)) destinations_generation = NextDestinationsGeneration();
  switch (k.kind) {
    case Kind::kNamespace:
      return Parse(e, namespaces[k.name]);
    case Kind::kService:
      selection_.Clear();
      return Parse(e, services[ok]);
    case Kind::kWorkload:
      selection_.Clear();
      return Parse(e, workloads[ok]);
    case Kind::kMeshConfig:
      return Parse(e, mesh_config.emplace());
    case Kind::kPlugin: {
      auto& v = plugins[k.name];
      v.create_revision = e.create_revision;
      return Parse(e, v.object);
    }
    case Kind::kPluginChain:
      return Parse(e, plugin_chains[ok]);
    case Kind::kPluginConfig: {
      auto& v = plugin_configs[ok];
      v.create_revision = e.create_revision;
      return Parse(e, v.object);
    }
    case Kind::kHTTPRoute:
      return Parse(e, http_routes[ok]);
  }
  return false;
}

void MeshState::Remove(const resources::Key& k) {
  const ObjectKey ok{k.ns, k.name};
  if (MakesDestinations(k.kind)) destinations_generation = NextDestinationsGeneration();
  switch (k.kind) {
    case Kind::kNamespace:
      namespaces.erase(k.name);
      break;
    case Kind::kService:
      selection_.Clear();
      services.erase(ok);
      break;
    case Kind::kWorkload:
      selection_.Clear();
      workloads.erase(ok);
      break;
    case Kind::kMeshConfig:
      mesh_config.reset();
      break;
    case Kind::kPlugin:
      plugins.erase(k.name);
      break;
    case Kind::kPluginChain:
      plugin_chains.erase(ok);
      break;
    case Kind::kPluginConfig:
      plugin_configs.erase(ok);
      break;
    case Kind::kHTTPRoute:
      http_routes.erase(ok);
      break;
  }
}

bool MeshState::Apply(const store::Event& event) {
  revision = std::max(revision, event.revision);
  if (event.type == store::Event::Type::kDelete) {
    Remove(event.entry.key);
    return true;
  }
  return Put(event.entry);
}

const MeshState::Selection& MeshState::Selected() const {
  if (selection_.built) return selection_;
  selection_.built = true;
  for (const auto& entry : services) {
    const auto& selector = entry.second.spec().selector();
    if (selector.empty()) continue;  // selects nothing
    // Any of its labels would do (all must match): the smallest, the same in every run.
    auto first = std::min_element(selector.begin(), selector.end(),
                                  [](const auto& a, const auto& b) { return a.first < b.first; });
    selection_.by_label[{entry.first.first, first->first, first->second}].push_back(&entry);
  }
  for (const auto& [key, wl] : workloads) {
    const bool reachable = !wl.spec().address().empty() && wl.spec().inbound_port() != 0;
    for (const auto* service : Selecting(selection_.by_label, wl)) {
      selection_.selected[service->first].push_back(&key);
      if (reachable) selection_.members[service->first].push_back(&wl);
    }
  }
  return selection_;
}

const std::vector<const ObjectKey*>& MeshState::SelectedWorkloads(const ObjectKey& service) const {
  static const std::vector<const ObjectKey*> kNone;
  const auto& selected = Selected().selected;
  auto it = selected.find(service);
  return it == selected.end() ? kNone : it->second;
}

const std::vector<const mesh::v1::Workload*>& MeshState::Members(const ObjectKey& service) const {
  static const std::vector<const mesh::v1::Workload*> kNone;
  const auto& members = Selected().members;
  auto it = members.find(service);
  return it == members.end() ? kNone : it->second;
}

std::vector<const MeshState::ServiceEntry*> MeshState::ServicesSelecting(const mesh::v1::Workload& workload) const {
  auto out = Selecting(Selected().by_label, workload);
  std::sort(out.begin(), out.end(), [](const auto* a, const auto* b) { return a->first < b->first; });
  return out;
}

std::vector<const MeshState::ServiceEntry*> MeshState::Selecting(const ServicesByLabel& by_label,
                                                                const mesh::v1::Workload& workload) {
  std::vector<const ServiceEntry*> out;
  const auto& labels = workload.metadata().labels();
  for (const auto& [label, value] : labels) {
    auto it = by_label.find({workload.metadata().namespace_(), label, value});
    if (it == by_label.end()) continue;
    for (const auto* service : it->second) {
      if (SelectorMatches(service->second.spec().selector(), labels)) out.push_back(service);
    }
  }
  return out;
}

absl::StatusOr<MeshState> LoadMeshState(store::Store& store) {
  MeshState state;
  state.revision = store.Revision();
  auto all = store.List(std::nullopt, "");
  if (!all.ok()) return all.status();
  for (const auto& e : *all) {
    if (!state.Put(e)) return absl::DataLossError("stored " + e.key.ToString() + " does not parse");
  }
  return state;
}

}  // namespace meshplug::control_plane::translate
