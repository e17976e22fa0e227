#include "resources/object.h"

#include "common/strings.h"

namespace meshplug::resources {
namespace {

const google::protobuf::FieldDescriptor* Field(const Object& obj, const char* name) {
  return obj.GetDescriptor()->FindFieldByName(name);
}

}  // namespace

std::string Key::ToString() const {
  return ns.empty() ? Cat(KindName(kind), " ", name) : Cat(KindName(kind), " ", ns, "/", name);
}

const meshplug::mesh::v1::ObjectMeta& Meta(const Object& obj) {
  return static_cast<const meshplug::mesh::v1::ObjectMeta&>(
      obj.GetReflection()->GetMessage(obj, Field(obj, "metadata")));
}

meshplug::mesh::v1::ObjectMeta& MutableMeta(Object& obj) {
  return static_cast<meshplug::mesh::v1::ObjectMeta&>(
      *obj.GetReflection()->MutableMessage(&obj, Field(obj, "metadata")));
}

Key KeyOf(const KindInfo& kind, const Object& obj) {
  const auto& meta = Meta(obj);
  return Key{kind.id, kind.namespaced() ? meta.namespace_() : "", meta.name()};
}

void SetTypeFields(const KindInfo& kind, Object& obj) {
  const auto* r = obj.GetReflection();
  r->SetString(&obj, Field(obj, "api_version"), kind.api_versions.front());
  r->SetString(&obj, Field(obj, "kind"), kind.name);
}

std::unique_ptr<Object> UserPart(const Object& obj) {
  std::unique_ptr<Object> copy(obj.New());
  copy->CopyFrom(obj);
  auto& meta = MutableMeta(*copy);
  meta.clear_resource_version();
  meta.clear_creation_timestamp();
  meta.clear_generation();
  if (const auto* status = Field(*copy, "status")) copy->GetReflection()->ClearField(copy.get(), status);
  return copy;
}

}  // namespace meshplug::resources
