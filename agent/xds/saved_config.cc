#include "agent/xds/saved_config.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/files.h"
#include "common/log.h"
#include "common/strings.h"
#include "envoy/service/discovery/v3/discovery.pb.h"

namespace meshplug::agent::xds {
namespace {

constexpr const char* kFormat = "meshplug-agent-snapshot-cache/1";

std::string StringField(const google::protobuf::Struct& s, const char* key) {
  auto it = s.fields().find(key);
  return it != s.fields().end() && it->second.kind_case() == google::protobuf::Value::kStringValue
             ? it->second.string_value()
             : "";
}

}  // namespace

absl::Status SaveConfig(const std::string& path, const std::string& agent, const xds::ResourceSet& resources,
                               const std::string& version) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string out = Cat("{\n\"format\": \"", kFormat, "\",\n\"agent\": ", JsonQuote(agent),
                        ",\n\"version\": ", JsonQuote(version), ",\n\"types\": [");
  bool first = true;
  for (const std::string& type : xds_types::TypeUrls()) {
    envoy::service::discovery::v3::DeltaDiscoveryResponse entry;
    entry.set_type_url(type);
    entry.set_system_version_info(resources.TypeVersion(type));
    for (const auto& [name, e] : resources.Of(type)) {
      auto* r = entry.add_resources();
      r->set_name(name);
      r->set_version(e.version);
      r->mutable_resource()->PackFrom(*e.message);
    }
    std::string json;
    auto st = google::protobuf::util::MessageToJsonString(entry, &json, options);
    if (!st.ok()) return absl::InternalError(Cat("snapshot cache: ", st.ToString()));
    out += Cat(first ? "\n" : ",\n", json);
    first = false;
  }
  out += "\n]}\n";
  return WritePrivateFile(path, out);
}

absl::StatusOr<SavedConfig> LoadSavedConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(Cat("no snapshot cache at ", path));
  std::ostringstream content;
  content << in.rdbuf();
  auto bad = [&](const std::string& why) { return absl::InvalidArgumentError(Cat(path, ": ", why)); };
  google::protobuf::Struct doc;
  if (auto st = google::protobuf::util::JsonStringToMessage(content.str(), &doc); !st.ok()) {
    return bad(Cat("not JSON: ", st.ToString()));
  }
  if (StringField(doc, "format") != kFormat) return bad(Cat("format is not ", kFormat));
  SavedConfig cached;
  cached.agent = StringField(doc, "agent");
  auto types = doc.fields().find("types");
  if (types == doc.fields().end() || types->second.kind_case() != google::protobuf::Value::kListValue) {
    return bad("no \"types\" list");
  }
  google::protobuf::util::JsonParseOptions parse;
  parse.ignore_unknown_fields = false;
  for (const auto& value : types->second.list_value().values()) {
    std::string json;
    envoy::service::discovery::v3::DeltaDiscoveryResponse entry;
    if (!google::protobuf::util::MessageToJsonString(value, &json).ok() ||
        !google::protobuf::util::JsonStringToMessage(json, &entry, parse).ok()) {
      return bad("a \"types\" entry does not parse");
    }
    xds::ResourceSet::Named named;
    for (const auto& r : entry.resources()) {
      auto msg = xds::ResourceSet::Decode(entry.type_url(), r.resource());
      if (!msg.ok()) return bad(std::string(msg.status().message()));
      named[r.name()] = xds::ResourceSet::Entry{r.version(), *std::move(msg)};
    }
    cached.resources.ReplaceType(entry.type_url(), std::move(named));
    cached.resources.SetTypeVersion(entry.type_url(), entry.system_version_info());
  }
  if (auto missing = cached.resources.Missing(/*endpoints=*/false); !missing.empty()) {
    return bad(Cat("incomplete: missing ", Join(missing, "; ")));
  }
  return cached;
}

}  // namespace meshplug::agent::xds
