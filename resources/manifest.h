// Manifests: YAML or JSON text with one or more documents, each a resource.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "resources/kinds.h"
#include "resources/object.h"

namespace meshplug::resources {

struct Document {
  std::string source;  // file name, or "-" for stdin
  int index = 0;       // 1-based position among the source's documents
  const KindInfo* kind = nullptr;
  std::unique_ptr<Object> object;

  Key key() const { return KeyOf(*kind, *object); }
  // "plugins.yaml: document 2 (Plugin token-verifier)" — the prefix of every error about it.
  std::string Where() const;
};

// Decodes every document of `content` strictly (unknown fields, wrong types, unknown kinds
// and apiVersions are errors). A document's `status` is ignored: the control plane owns it.
// Errors read "<source>: document N (Kind name): <field path> (line L): <reason>".
absl::StatusOr<std::vector<Document>> ParseManifest(std::string_view source,
                                                    std::string_view content);

}  // namespace meshplug::resources
