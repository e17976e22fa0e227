#include "control_plane/xds/resources.h"

#include <google/protobuf/any.pb.h>

#include <algorithm>

#include "common/hash.h"
#include "common/strings.h"
#include "control_plane/xds/envoy_resources.h"

namespace meshplug::control_plane::xds {

namespace {

const AgentResources::Named& OwnOf(const AgentResources& r, const std::string& type_url) {
  static const AgentResources::Named kNone;
  auto it = r.own.find(type_url);
  return it == r.own.end() ? kNone : it->second;
}

std::shared_ptr<EncodedResource> Encoded(const std::string& name, const std::string& type_url, std::string bytes,
                                         std::string version) {
  auto r = std::make_shared<EncodedResource>();
  r->name = name;
  r->version = std::move(version);
  google::protobuf::Any any;
  any.set_type_url(type_url);
  any.set_value(std::move(bytes));
  std::string encoded = any.SerializeAsString();
  r->value_offset = encoded.size() - any.value().size();  // the value is the Any's last field
  r->any = SliceOwning(std::move(encoded));
  return r;
}

// Each resource of `type_url` in `r` and its base, in name order.
void ForEachOf(const AgentResources& r, const std::string& type_url,
               const std::function<void(const std::string&, const ResourcePtr&)>& f) {
  static const AgentResources::Named kNone;
  const AgentResources::Named& mine = OwnOf(r, type_url);
  const AgentResources::Named& shared = r.base ? OwnOf(*r.base, type_url) : kNone;
  // Both in name order: a merge, the agent's own winning a tie.
  auto a = mine.begin();
  auto b = shared.begin();
  while (a != mine.end() || b != shared.end()) {
    if (b == shared.end() || (a != mine.end() && a->first <= b->first)) {
      if (b != shared.end() && a->first == b->first) ++b;
      f(a->first, a->second);
      ++a;
    } else {
      f(b->first, b->second);
      ++b;
    }
  }
}

void SetTypeVersions(AgentResources& r, const std::vector<std::string>& type_urls) {
  for (const auto& type : type_urls) {
    xds_types::TypeVersionBuilder version;
    ForEachOf(r, type, [&](const std::string& name, const ResourcePtr& res) { version.Add(name, res->version); });
    r.type_versions[type] = version.Done();
  }
}

// Interned resources are equal when they are the same object (and then of the same name).
bool SameObjects(const AgentResources::Named& a, const AgentResources::Named& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [](const auto& x, const auto& y) { return x.second == y.second; });
}

const std::string* BaseVersion(const AgentResources& r, const std::string& type_url) {
  return r.base ? &r.base->type_versions.at(type_url) : nullptr;
}

// `out`'s type versions (over all of the agent's resources, as the agent computes them
// from what it received) and snapshot version. A type whose own resources are those of
// `previous` (the same objects) over a base with the same version of the type keeps its
// version: hashing every name and version of a type is most of the cost otherwise.
void VersionTypes(AgentResources& out, const AgentResources* previous) {
  std::vector<std::string> changed;
  for (const auto& type : xds_types::TypeUrls()) {
    const std::string* base = BaseVersion(out, type);
    const std::string* before = previous ? BaseVersion(*previous, type) : nullptr;
    if (previous && SameObjects(OwnOf(*previous, type), OwnOf(out, type)) &&
        (base && before ? *base == *before : base == before)) {
      out.type_versions[type] = previous->type_versions.at(type);
    } else {
      changed.push_back(type);
    }
  }
  SetTypeVersions(out, changed);
  // Every type kept its version: so does the snapshot, whose version is made of theirs.
  out.version = previous && changed.empty() ? previous->version : xds_types::SnapshotVersion(out.type_versions);
}

}  // namespace

grpc::Slice SliceOwning(std::string bytes) {
  auto* owned = new std::string(std::move(bytes));
  return grpc::Slice(owned->data(), owned->size(), [](void* s) { delete static_cast<std::string*>(s); }, owned);
}

std::string_view EncodedResource::Value() const { return AnyBytes().substr(value_offset); }

const AgentResources& AgentResources::Layer(const std::string& type_url) const {
  if (!IsEnvoyType(type_url)) return *this;
  // Envoy's types are the destinations' alone, which the shared base holds (an agent's own
  // copies of them differ only in PluginConfigs): translated once for every agent of it.
  if (base) return base->Layer(type_url);
  std::call_once(envoy_once_, [&] {
    auto envoy = std::make_unique<AgentResources>();
    ForEachEnvoyResource(ToSnapshot(*this), [&](const std::string& name, const google::protobuf::Message& msg) {
      std::string bytes = DeterministicBytes(msg);
      std::string version = xds_types::ResourceVersionOfBytes(bytes);
      const std::string url = xds_types::AnyTypeUrl(*msg.GetDescriptor());
      envoy->own[url][name] = Encoded(name, url, std::move(bytes), std::move(version));
    });
    SetTypeVersions(*envoy, EnvoyTypeUrls());
    envoy_ = std::move(envoy);
  });
  return *envoy_;
}

const EncodedResource* AgentResources::Find(const std::string& type_url, const std::string& name) const {
  const AgentResources& top = Layer(type_url);
  for (const AgentResources* layer : {&top, top.base.get()}) {
    if (!layer) continue;
    const Named& named = OwnOf(*layer, type_url);
    if (auto it = named.find(name); it != named.end()) return it->second.get();
  }
  return nullptr;
}

const std::string& AgentResources::TypeVersion(const std::string& type_url) const {
  return Layer(type_url).type_versions.at(type_url);
}

void AgentResources::ForEach(const std::string& type_url,
                             const std::function<void(const std::string&, const ResourcePtr&)>& f) const {
  ForEachOf(Layer(type_url), type_url, f);
}

std::optional<AgentResources::Parts> AgentResources::SharedAndOwn(const std::string& type_url) const {
  const AgentResources& top = Layer(type_url);
  // The agent's own hold none of Envoy's types: those are the destinations' alone.
  Parts parts{nullptr, &OwnOf(*this, type_url)};
  if (&top != this) {
    parts.shared = &top;
    return parts;
  }
  const Named* shared = base ? &OwnOf(*base, type_url) : nullptr;
  if (!shared || shared->empty()) return parts;
  for (const auto& [name, _] : *parts.own) {
    if (shared->count(name)) return std::nullopt;
  }
  parts.shared = base.get();
  return parts;
}

const grpc::Slice& AgentResources::SotwEntries(const std::string& type_url,
                                               const std::function<grpc::Slice(const Named&)>& frame) const {
  std::lock_guard lock(sotw_entries_mu_);
  auto it = sotw_entries_.find(type_url);
  if (it == sotw_entries_.end()) it = sotw_entries_.emplace(type_url, frame(OwnOf(*this, type_url))).first;
  return it->second;
}

AgentResources::Named AgentResources::Of(const std::string& type_url) const {
  Named out;
  ForEach(type_url, [&](const std::string& name, const ResourcePtr& r) { out.emplace(name, r); });
  return out;
}

size_t ResourceInterner::KeyHash::operator()(const Key& k) const {
  return std::hash<const void*>()(k.type) ^ std::hash<std::string_view>()(k.name) * 31 ^ k.bytes_hash;
}

ResourcePtr ResourceInterner::Intern(const std::string& name, const google::protobuf::Message& msg) {
  std::string bytes = DeterministicBytes(msg);
  Key key{msg.GetDescriptor(), name, std::hash<std::string_view>()(bytes)};
  // Under the lock from look-up to insert, so that equal bytes are never kept twice; the
  // publishing thread is the one that interns.
  std::lock_guard lock(mu_);
  auto [first, last] = by_key_.equal_range(key);
  auto expired = by_key_.end();
  for (auto it = first; it != last; ++it) {
    auto existing = it->second.lock();
    if (!existing) {
      expired = it;
    } else if (existing->Value() == bytes) {
      return existing;
    }
  }
  std::string version = xds_types::ResourceVersionOfBytes(bytes);
  auto r = Encoded(name, xds_types::TypeOf(msg.GetDescriptor()).url, std::move(bytes), std::move(version));
  if (expired != by_key_.end()) {
    expired->second = r;  // the same resource back after nobody held it
    return r;
  }
  by_key_.emplace(std::move(key), r);
  if (by_key_.size() > 1024 && by_key_.size() % 1024 == 0) {
    std::erase_if(by_key_, [](const auto& kv) { return kv.second.expired(); });
  }
  return r;
}

size_t ResourceInterner::size() {
  std::lock_guard lock(mu_);
  std::erase_if(by_key_, [](const auto& kv) { return kv.second.expired(); });
  return by_key_.size();
}

std::shared_ptr<const AgentResources> ToResources(const v1::Snapshot& snap, ResourceInterner& interner,
                                                  std::shared_ptr<const AgentResources> base,
                                                  const AgentResources* previous) {
  auto out = std::make_shared<AgentResources>();
  out->base = std::move(base);
  xds_types::ForEachResource(snap, [&](const xds_types::ResourceType& type, const google::protobuf::Message& msg) {
    const std::string name = type.name_of(msg);
    out->own[type.url][name] = interner.Intern(name, msg);
  });
  VersionTypes(*out, previous);
  return out;
}

namespace {

// `agent` again: its own resources, changed by `edit` if given, over `base`, versioned
// against `agent`, so that only the types that changed get new versions.
std::shared_ptr<const AgentResources> Derive(const AgentResources& agent, std::shared_ptr<const AgentResources> base,
                                             const std::function<void(AgentResources&)>& edit = nullptr) {
  auto out = std::make_shared<AgentResources>();
  out->own = agent.own;
  out->base = std::move(base);
  if (edit) edit(*out);
  VersionTypes(*out, &agent);
  return out;
}

}  // namespace

std::shared_ptr<const AgentResources> Rebase(const AgentResources& agent, std::shared_ptr<const AgentResources> base) {
  return Derive(agent, std::move(base));
}

std::shared_ptr<const AgentResources> Replace(const AgentResources& agent, const std::string& type_url,
                                              const std::vector<ResourcePtr>& replacements,
                                              std::shared_ptr<const AgentResources> base) {
  return Derive(agent, base ? std::move(base) : agent.base, [&](AgentResources& out) {
    auto named = out.own.find(type_url);
    if (named == out.own.end()) return;
    for (const ResourcePtr& r : replacements) {
      if (auto it = named->second.find(r->name); it != named->second.end()) it->second = r;
    }
  });
}

v1::Snapshot ToSnapshot(const AgentResources& resources) {
  v1::Snapshot snap;
  snap.set_version(resources.version);
  for (const auto& type : xds_types::TypeUrls()) {
    const xds_types::ResourceType& t = *xds_types::FindType(type);
    resources.ForEach(type, [&](const std::string&, const ResourcePtr& r) {
      const std::string_view value = r->Value();
      xds_types::AddResource(snap, t)->ParseFromArray(value.data(), static_cast<int>(value.size()));
    });
  }
  return snap;
}

}  // namespace meshplug::control_plane::xds
