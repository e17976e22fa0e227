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

// Bounds on what decoding may build, checked on the parsed YAML before anything is
// decoded: YAML aliases make a small text stand for a huge tree ("billion laughs"), so
// nodes and scalar bytes are counted at every use of an alias.
struct ManifestLimits {
  size_t max_bytes_of_text = 8 << 20;           // per apply: the manifests as sent
  size_t max_depth = 64;                         // nesting of objects and lists
  size_t max_nodes_per_document = 100'000;
  size_t max_scalar_bytes_per_document = 4 << 20;
  size_t max_nodes = 1'000'000;                  // per apply
  size_t max_scalar_bytes = 16 << 20;            // per apply
  size_t max_documents = 10'000;                 // per apply
};

// What one apply has used of its limits, across all its manifests.
class ManifestBudget {
 public:
  explicit ManifestBudget(ManifestLimits limits = {}) : limits_(limits) {}
  const ManifestLimits& limits() const { return limits_; }

 private:
  friend class ManifestDecoder;
  ManifestLimits limits_;
  size_t text_bytes_ = 0, nodes_ = 0, scalar_bytes_ = 0, documents_ = 0;
};

// Decodes every document of `content` strictly (unknown fields, wrong types, unknown kinds
// and apiVersions are errors). A document's `status` is ignored: the control plane owns it.
// Errors read "<source>: document N (Kind name): <field path> (line L): <reason>"; a limit
// of `budget` that is exceeded is named in the error.
absl::StatusOr<std::vector<Document>> ParseManifest(std::string_view source, std::string_view content,
                                                    ManifestBudget& budget);
// With a budget of its own (one manifest is the whole apply).
absl::StatusOr<std::vector<Document>> ParseManifest(std::string_view source, std::string_view content);

}  // namespace meshplug::resources
