#include "common/xds_types.h"

#include "common/hash.h"

namespace meshplug::xds_types {
namespace {

using google::protobuf::Message;

template <typename T>
const T& As(const Message& m) {
  return static_cast<const T&>(m);
}

std::string ChainSetName(const Message& m) {
  const std::string& name = As<v1::ChainSet>(m).name();
  return name.empty() ? "chains" : name;
}

std::string EndpointsName(const Message& m) {
  const auto& e = As<v1::Endpoints>(m);
  return e.page() == 0 ? e.cluster() : e.cluster() + "#" + std::to_string(e.page());
}

std::string ServiceName(const Message& m) {
  const auto& s = As<v1::Service>(m);
  return s.inbound() ? s.name() + "|inbound" : s.name();
}

template <typename T>
ResourceType Type(const char* snapshot_field, std::string (*name_of)(const Message&)) {
  const auto* descriptor = T::descriptor();
  return ResourceType{descriptor->name(), std::string(kTypePrefix) + descriptor->name(),
                      &T::default_instance(), v1::Snapshot::descriptor()->FindFieldByName(snapshot_field),
                      name_of};
}

}  // namespace

const std::vector<ResourceType>& ResourceTypes() {
  static const auto* types = new std::vector<ResourceType>{
      Type<v1::AgentSettings>("settings", [](const Message&) { return std::string("agent"); }),
      Type<v1::PluginScript>("scripts", [](const Message& m) { return As<v1::PluginScript>(m).name(); }),
      Type<v1::Cluster>("clusters", [](const Message& m) { return As<v1::Cluster>(m).name(); }),
      Type<v1::Endpoints>("endpoints", EndpointsName),
      Type<v1::Service>("services", ServiceName),
      Type<v1::ChainSet>("chains", ChainSetName),
  };
  return *types;
}

const std::vector<std::string>& TypeUrls() {
  static const auto* urls = [] {
    auto* out = new std::vector<std::string>;
    for (const auto& t : ResourceTypes()) out->push_back(t.url);
    return out;
  }();
  return *urls;
}

const ResourceType* FindType(std::string_view url) {
  for (const auto& t : ResourceTypes()) {
    if (t.url == url) return &t;
  }
  return nullptr;
}

const ResourceType& TypeOf(const google::protobuf::Descriptor* descriptor) {
  for (const auto& t : ResourceTypes()) {
    if (t.prototype->GetDescriptor() == descriptor) return t;
  }
  // A programming error: only the six snapshot messages are resources.
  std::abort();
}

std::string ResourceName(const Message& resource) { return TypeOf(resource.GetDescriptor()).name_of(resource); }

void ForEachResource(const v1::Snapshot& snapshot,
                     const std::function<void(const ResourceType&, const Message&)>& fn) {
  const auto* reflection = snapshot.GetReflection();
  for (const auto& t : ResourceTypes()) {
    if (t.field->is_repeated()) {
      for (int i = 0; i < reflection->FieldSize(snapshot, t.field); ++i) {
        fn(t, reflection->GetRepeatedMessage(snapshot, t.field, i));
      }
    } else if (reflection->HasField(snapshot, t.field)) {
      fn(t, reflection->GetMessage(snapshot, t.field));
    }
  }
}

Message* AddResource(v1::Snapshot& snapshot, const ResourceType& type) {
  const auto* reflection = snapshot.GetReflection();
  return type.field->is_repeated() ? reflection->AddMessage(&snapshot, type.field)
                                   : reflection->MutableMessage(&snapshot, type.field);
}

std::string ResourceVersion(const Message& resource) { return ResourceVersionOfBytes(DeterministicBytes(resource)); }

std::string ResourceVersionOfBytes(std::string_view bytes) { return Sha256Hex(bytes).substr(0, 16); }

std::string AnyTypeUrl(const google::protobuf::Descriptor& descriptor) {
  return "type.googleapis.com/" + descriptor.full_name();
}

void TypeVersionBuilder::Add(std::string_view name, std::string_view version) {
  digest_.append(name).append("=").append(version).append(";");
}

std::string TypeVersionBuilder::Done() const { return Sha256Hex(digest_).substr(0, 16); }

std::string TypeVersion(const std::map<std::string, std::string>& name_versions) {
  TypeVersionBuilder builder;
  for (const auto& [name, version] : name_versions) builder.Add(name, version);
  return builder.Done();
}

std::string SnapshotVersion(const std::map<std::string, std::string>& type_versions) {
  static const std::string kEmpty = TypeVersion({});
  TypeVersionBuilder builder;
  for (const auto& type : ResourceTypes()) {
    auto it = type_versions.find(type.url);
    builder.Add(type.url, it == type_versions.end() ? kEmpty : it->second);
  }
  return builder.Done();
}

}  // namespace meshplug::xds_types
