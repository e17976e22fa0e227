#include "resources/manifest.h"

#include <yaml-cpp/yaml.h>

#include "common/strings.h"
#include "resources/yaml_decode.h"

namespace meshplug::resources {
namespace {

std::string Scalar(const YAML::Node& node, const char* key) {
  const YAML::Node value = node[key];
  return value && value.IsScalar() ? value.Scalar() : "";
}

std::string DocPrefix(std::string_view source, int index, std::string_view kind,
                      std::string_view name) {
  std::string out = Cat(source, ": document ", index);
  if (!kind.empty()) out += Cat(" (", kind, name.empty() ? "" : " ", name, ")");
  return out;
}

absl::StatusOr<Document> ParseDocument(std::string_view source, int index, const YAML::Node& node) {
  const std::string kind_name = Scalar(node, "kind");
  const std::string name = node.IsMap() && node["metadata"].IsMap() ? Scalar(node["metadata"], "name") : "";
  const std::string where = DocPrefix(source, index, kind_name, name);
  auto fail = [&](std::string_view reason) {
    return absl::InvalidArgumentError(Cat(where, ": ", reason));
  };
  if (!node.IsMap()) return fail("a resource must be an object with apiVersion, kind, metadata");
  if (kind_name.empty()) return fail("kind: required");
  const KindInfo* kind = FindKind(kind_name);
  if (kind == nullptr) {
    return fail(Cat("kind", LineOf(node["kind"]), ": unknown kind \"", kind_name,
                             "\" (known: ", KindNames(), ")"));
  }
  const std::string api_version = Scalar(node, "apiVersion");
  if (api_version.empty()) {
    return fail(Cat("apiVersion: required (", kind->api_versions.front(), ")"));
  }
  if (std::find(kind->api_versions.begin(), kind->api_versions.end(), api_version) ==
      kind->api_versions.end()) {
    return fail(Cat("apiVersion", LineOf(node["apiVersion"]), ": \"", api_version,
                             "\" is not an apiVersion of ", kind->name, " (use ",
                             kind->api_versions.front(), ")"));
  }
  if (kind->id == Kind::kPlugin && node["spec"].IsMap() && node["spec"]["pipyscript"]) {
    return fail(Cat("spec.pipyscript", LineOf(node["spec"]["pipyscript"]),
                             ": PipyJS is not supported; write the plugin in Lua 5.4 and put it "
                             "in spec.script"));
  }
  Document doc{std::string(source), index, kind, kind->New()};
  if (auto st = DecodeYaml(node, *doc.object); !st.ok()) return fail(std::string(st.message()));
  if (const auto* status = doc.object->GetDescriptor()->FindFieldByName("status")) {
    doc.object->GetReflection()->ClearField(doc.object.get(), status);
  }
  return doc;
}

}  // namespace

std::string Document::Where() const {
  return DocPrefix(source, index, kind->name, Meta(*object).name());
}

absl::StatusOr<std::vector<Document>> ParseManifest(std::string_view source,
                                                    std::string_view content) {
  std::vector<YAML::Node> nodes;
  try {
    nodes = YAML::LoadAll(std::string(content));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(Cat(source, ": line ", e.mark.line + 1,
                                                   ", column ", e.mark.column + 1,
                                                   ": not valid YAML or JSON: ", e.msg));
  }
  std::vector<Document> docs;
  int index = 0;
  for (const auto& node : nodes) {
    if (node.IsNull()) continue;  // an empty document, e.g. after a trailing "---"
    auto doc = ParseDocument(source, ++index, node);
    if (!doc.ok()) return doc.status();
    docs.push_back(std::move(*doc));
  }
  return docs;
}

}  // namespace meshplug::resources
