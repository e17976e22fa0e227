#include "control_plane/api/resource_api.h"

#include <google/protobuf/util/message_differencer.h>

#include <map>
#include <set>

#include "common/strings.h"
#include "control_plane/validation/validation.h"

namespace meshplug::control_plane::api {
namespace {

using resources::Document;
using resources::Key;
using resources::KindInfo;
using resources::Object;

absl::Status Invalid(const std::string& msg) { return absl::InvalidArgumentError(msg); }

const Document* FindMeshConfig(const std::vector<Document>& docs) {
  for (const auto& d : docs) {
    if (d.kind->id == resources::Kind::kMeshConfig) return &d;
  }
  return nullptr;
}

v1::ObjectResult Result(const Key& key, const std::string& action, int64_t rv) {
  v1::ObjectResult r;
  r.set_kind(resources::KindName(key.kind));
  r.set_namespace_(key.ns);
  r.set_name(key.name);
  r.set_action(action);
  r.set_resource_version(rv);
  return r;
}

}  // namespace

absl::StatusOr<std::vector<Document>> ResourceApi::ParseAll(
    const google::protobuf::RepeatedPtrField<v1::Manifest>& manifests) const {
  std::vector<Document> docs;
  resources::ManifestBudget budget;  // for the whole apply, across its manifests
  for (const auto& m : manifests) {
    auto parsed = resources::ParseManifest(m.source().empty() ? "-" : m.source(), m.content(), budget);
    if (!parsed.ok()) return parsed.status();
    for (auto& d : *parsed) docs.push_back(std::move(d));
  }
  if (docs.empty()) return Invalid("no resources found in the input");
  std::map<Key, const Document*> seen;
  for (const auto& d : docs) {
    auto [it, fresh] = seen.emplace(d.key(), &d);
    if (!fresh) {
      return Invalid(Cat(d.Where(), ": ", d.key().ToString(), " is also defined by ",
                         it->second->Where()));
    }
  }
  return docs;
}

absl::StatusOr<std::unique_ptr<Object>> ResourceApi::Decode(const store::Entry& entry) const {
  const KindInfo& kind = resources::Info(entry.key.kind);
  auto obj = kind.New();
  if (!obj->ParseFromString(entry.value)) {
    return absl::DataLossError(Cat("stored ", entry.key.ToString(), " does not parse"));
  }
  resources::MutableMeta(*obj).set_resource_version(entry.resource_version);
  if (kind.id == resources::Kind::kPlugin) {
    // Only scripts that compiled are ever stored.
    static_cast<mesh::v1::Plugin&>(*obj).mutable_status()->set_compile("ok");
  }
  if (status_ != nullptr) status_->FillStatus(*obj);
  return obj;
}

absl::StatusOr<v1::ApplyResponse> ResourceApi::Apply(const v1::ApplyRequest& req) {
  auto docs = ParseAll(req.manifests());
  if (!docs.ok()) return docs.status();
  std::lock_guard lock(apply_mu_);

  // Settings that decide validity come from this apply first, then from the store.
  validation::ValidationContext ctx;
  auto stored_mesh = store_.List(resources::Kind::kMeshConfig, "");
  if (!stored_mesh.ok()) return stored_mesh.status();
  const Document* mesh_doc = FindMeshConfig(*docs);
  if (mesh_doc != nullptr) {
    ctx.plugins_enabled = static_cast<const mesh::v1::MeshConfig&>(*mesh_doc->object)
                              .spec().feature_flags().enable_plugin_policy();
    if (!stored_mesh->empty() && stored_mesh->front().key.name != mesh_doc->key().name) {
      return Invalid(Cat(mesh_doc->Where(), ": metadata.name: there is one MeshConfig and it is \"",
                         stored_mesh->front().key.name, "\""));
    }
  } else if (!stored_mesh->empty()) {
    mesh::v1::MeshConfig mc;
    mc.ParseFromString(stored_mesh->front().value);
    ctx.plugins_enabled = mc.spec().feature_flags().enable_plugin_policy();
  }
  std::set<std::string> namespaces;
  auto stored_ns = store_.List(resources::Kind::kNamespace, "");
  if (!stored_ns.ok()) return stored_ns.status();
  for (const auto& e : *stored_ns) namespaces.insert(e.key.name);
  for (const auto& d : *docs) {
    if (d.kind->id == resources::Kind::kNamespace) namespaces.insert(d.key().name);
  }

  for (const auto& d : *docs) {
    if (auto st = validation::Validate(d, ctx); !st.ok()) return st;
    const Key key = d.key();
    if (d.kind->namespaced() && !namespaces.count(key.ns)) {
      return Invalid(Cat(d.Where(), ": metadata.namespace: namespace \"", key.ns,
                         "\" does not exist; create it first (meshctl namespace add ", key.ns, ")"));
    }
  }

  // Held until the commit below is done.
  auto claims = addresses_.Assign(store_, *docs);
  if (!claims.ok()) return claims.status();

  std::vector<store::Write> writes;
  v1::ApplyResponse resp;
  const std::string now = NowRfc3339();
  for (auto& d : *docs) {
    const Key key = d.key();
    auto existing = store_.Get(key);
    if (!existing.ok()) return existing.status();
    Object& obj = *d.object;
    auto& meta = resources::MutableMeta(obj);
    const int64_t claimed = meta.resource_version();
    const int64_t current = existing->has_value() ? (*existing)->resource_version : 0;
    if (claimed != 0 && claimed != current) {
      return absl::FailedPreconditionError(
          Cat(d.Where(), ": metadata.resourceVersion: ", key.ToString(),
              current == 0 ? " does not exist" : Cat(" was changed: its resourceVersion is ", current),
              ", not ", claimed, "; get it again and retry"));
    }
    resources::SetTypeFields(*d.kind, obj);
    meta.clear_resource_version();
    std::string action = "created";
    if (existing->has_value()) {
      auto old = Decode(**existing);
      if (!old.ok()) return old.status();
      const auto& old_meta = resources::Meta(**old);
      meta.set_creation_timestamp(old_meta.creation_timestamp());
      meta.set_generation(old_meta.generation());
      if (google::protobuf::util::MessageDifferencer::Equals(*resources::UserPart(obj),
                                                             *resources::UserPart(**old))) {
        resp.add_results()->CopyFrom(Result(key, "unchanged", current));
        continue;
      }
      meta.set_generation(old_meta.generation() + 1);
      action = "configured";
    } else {
      meta.set_creation_timestamp(now);
      meta.set_generation(1);
    }
    writes.push_back(store::Write{key, obj.SerializeAsString(), current});
    resp.add_results()->CopyFrom(Result(key, req.dry_run() ? action + " (dry run)" : action, 0));
  }
  if (req.dry_run() || writes.empty()) {
    resp.set_revision(store_.Revision());
    return resp;
  }
  auto rev = store_.Commit(writes);
  if (!rev.ok()) return rev.status();
  for (auto& r : *resp.mutable_results()) {
    if (r.action() != "unchanged") r.set_resource_version(*rev);
  }
  resp.set_revision(*rev);
  return resp;
}

absl::StatusOr<v1::DeleteResponse> ResourceApi::Delete(const v1::DeleteRequest& req) {
  std::vector<Key> keys;
  if (!req.manifests().empty()) {
    auto docs = ParseAll(req.manifests());
    if (!docs.ok()) return docs.status();
    for (const auto& d : *docs) keys.push_back(d.key());
  }
  for (const auto& ref : req.refs()) {
    const KindInfo* kind = resources::ResolveKind(ref.kind());
    if (kind == nullptr) {
      return Invalid(Cat("unknown kind \"", ref.kind(), "\" (known: ", resources::KindNames(), ")"));
    }
    if (ref.name().empty()) return Invalid(Cat("delete ", kind->name, ": a name is required"));
    if (kind->namespaced() && ref.namespace_().empty()) {
      return Invalid(Cat("delete ", kind->name, " ", ref.name(), ": a namespace is required"));
    }
    keys.push_back(Key{kind->id, kind->namespaced() ? ref.namespace_() : "", ref.name()});
  }
  if (keys.empty()) return Invalid("nothing to delete");

  std::set<Key> deleting(keys.begin(), keys.end());
  std::vector<store::Write> writes;
  v1::DeleteResponse resp;
  for (const auto& key : keys) {
    auto existing = store_.Get(key);
    if (!existing.ok()) return existing.status();
    if (!existing->has_value()) return absl::NotFoundError(Cat(key.ToString(), " not found"));
    writes.push_back(store::Write{key, std::nullopt, (*existing)->resource_version});
    resp.add_results()->CopyFrom(Result(key, "deleted", 0));
    if (key.kind != resources::Kind::kNamespace) continue;
    auto inside = store_.List(std::nullopt, key.name);
    if (!inside.ok()) return inside.status();
    for (const auto& e : *inside) {
      if (!deleting.insert(e.key).second) continue;
      writes.push_back(store::Write{e.key, std::nullopt, e.resource_version});
      resp.add_results()->CopyFrom(Result(e.key, "deleted", 0));
    }
  }
  auto rev = store_.Commit(writes);
  if (!rev.ok()) return rev.status();
  for (auto& r : *resp.mutable_results()) r.set_resource_version(*rev);
  resp.set_revision(*rev);
  return resp;
}

absl::StatusOr<v1::GetResponse> ResourceApi::Get(const v1::GetRequest& req) {
  const KindInfo* kind = resources::ResolveKind(req.kind());
  if (kind == nullptr) {
    return Invalid(Cat("unknown kind \"", req.kind(), "\" (known: ", resources::KindNames(), ")"));
  }
  const std::string ns = kind->namespaced() && !req.all_namespaces() ? req.namespace_() : "";
  std::vector<store::Entry> entries;
  if (!req.name().empty()) {
    if (kind->namespaced() && ns.empty()) {
      return Invalid(Cat("get ", kind->name, " ", req.name(), ": a namespace is required"));
    }
    auto e = store_.Get(Key{kind->id, ns, req.name()});
    if (!e.ok()) return e.status();
    if (!e->has_value()) return absl::NotFoundError(Cat(Key{kind->id, ns, req.name()}.ToString(), " not found"));
    entries.push_back(**e);
  } else {
    auto list = store_.List(kind->id, ns);
    if (!list.ok()) return list.status();
    entries = std::move(*list);
  }
  v1::GetResponse resp;
  for (const auto& e : entries) {
    auto obj = Decode(e);
    if (!obj.ok()) return obj.status();
    resp.add_objects()->PackFrom(**obj);
  }
  return resp;
}

}  // namespace meshplug::control_plane::api
