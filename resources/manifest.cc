#include "resources/manifest.h"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <optional>
#include <set>
#include <sstream>

#include "common/strings.h"
#include "resources/yaml_decode.h"

namespace meshplug::resources {
namespace {

// node[key] as text; "" when node is not an object or key is not a scalar there.
std::string Scalar(const YAML::Node& node, const char* key) {
  if (!node.IsMap()) return "";
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
  const std::string name = node.IsMap() ? Scalar(node["metadata"], "name") : "";
  const std::string where = DocPrefix(source, index, kind_name, name);
  auto fail = [&](std::string_view reason) {
    return absl::InvalidArgumentError(Cat(where, ": ", reason));
  };
  if (!node.IsMap()) {
    return fail(Cat("a resource must be an object with apiVersion, kind, metadata; got ",
                    node.IsSequence() ? "a list" : "a bare value"));
  }
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

// yaml-cpp 0.7 never ends on some malformed text: a ',' where a block node may start
// (",", "- a\n,", "---\n,") yields empty documents without consuming input, until memory
// runs out (found by fuzz/manifest). Its event parser therefore runs first, counting
// events against the apply's node limit, and stops at a document that starts where the
// previous one did, before LoadAll builds anything.
class TerminationCheck : public YAML::EventHandler {
 public:
  struct Stop {
    std::string reason;
    YAML::Mark mark;
  };

  explicit TerminationCheck(size_t max_events) : max_events_(max_events) {}

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (last_start_ && last_start_->pos == mark.pos) throw Stop{"no document can start here", mark};
    last_start_ = mark;
    Count(mark);
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { Count(mark); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { Count(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t, const std::string&) override {
    Count(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    Count(mark);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    Count(mark);
  }
  void OnMapEnd() override {}

 private:
  void Count(const YAML::Mark& mark) {
    if (++events_ > max_events_) throw Stop{Cat("more than ", max_events_, " YAML nodes in the apply"), mark};
  }

  const size_t max_events_;
  size_t events_ = 0;
  std::optional<YAML::Mark> last_start_;
};

absl::Status CheckTermination(std::string_view source, const std::string& text, size_t max_events) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  TerminationCheck check(max_events);
  try {
    while (parser.HandleNextDocument(check)) {
    }
  } catch (const TerminationCheck::Stop& stop) {
    return absl::InvalidArgumentError(Cat(source, ": line ", stop.mark.line + 1, ", column ", stop.mark.column + 1,
                                          ": not valid YAML or JSON: ", stop.reason));
  } catch (const YAML::Exception&) {
    // LoadAll reports it below, with the same words as always.
  }
  return absl::OkStatus();
}

}  // namespace

// Walks a parsed document as decoding would (aliases at every use) and stops at the first
// limit it passes, so the cost of the check is bounded by the limits themselves. It also
// refuses values that are not UTF-8 text.
class ManifestDecoder {
 public:
  ManifestDecoder(ManifestBudget& budget, std::string_view source) : budget_(budget), source_(source) {}

  absl::Status Text(size_t bytes) {
    budget_.text_bytes_ += bytes;
    if (budget_.text_bytes_ > budget_.limits_.max_bytes_of_text) {
      return Over(Cat(source_, ": the manifests are larger than ", budget_.limits_.max_bytes_of_text,
                      " bytes; apply them in parts"));
    }
    return absl::OkStatus();
  }

  absl::Status Document(int index, const YAML::Node& node) {
    const ManifestLimits& l = budget_.limits_;
    if (++budget_.documents_ > l.max_documents) {
      return Over(Cat(source_, ": more than ", l.max_documents, " documents in one apply; apply them in parts"));
    }
    nodes_ = scalar_bytes_ = 0;
    const std::string where = Cat(source_, ": document ", index);
    if (absl::Status st = Walk(node, 1, where); !st.ok()) return st;
    budget_.nodes_ += nodes_;
    budget_.scalar_bytes_ += scalar_bytes_;
    if (budget_.nodes_ > l.max_nodes) {
      return Over(Cat(where, ": the apply has more than ", l.max_nodes, " YAML nodes in all; apply it in parts"));
    }
    if (budget_.scalar_bytes_ > l.max_scalar_bytes) {
      return Over(Cat(where, ": the apply has more than ", l.max_scalar_bytes,
                      " bytes of values in all; apply it in parts"));
    }
    return absl::OkStatus();
  }

 private:
  static absl::Status Over(std::string message) { return absl::InvalidArgumentError(std::move(message)); }

  absl::Status Walk(const YAML::Node& node, size_t depth, const std::string& where) {
    const ManifestLimits& l = budget_.limits_;
    if (depth > l.max_depth) {
      return Over(Cat(where, LineOf(node), ": nested deeper than ", l.max_depth, " levels"));
    }
    if (++nodes_ > l.max_nodes_per_document) {
      return Over(Cat(where, ": more than ", l.max_nodes_per_document,
                      " YAML nodes (an alias counts as a copy of what it names)"));
    }
    if (node.IsScalar()) {
      // Values become protobuf strings, which must be UTF-8 (the text as sent may have
      // been another Unicode encoding, which the YAML parser converts).
      if (ValidUtf8Prefix(node.Scalar()) != node.Scalar().size()) {
        return absl::InvalidArgumentError(Cat(where, LineOf(node), ": a value that is not UTF-8 text"));
      }
      scalar_bytes_ += node.Scalar().size();
      if (scalar_bytes_ > l.max_scalar_bytes_per_document) {
        return Over(Cat(where, ": more than ", l.max_scalar_bytes_per_document,
                        " bytes of values (an alias counts as a copy of what it names)"));
      }
      return absl::OkStatus();
    }
    std::set<std::string> keys;
    for (const auto& item : node) {
      // A map yields key/value pairs, a list its elements.
      if (node.IsMap()) {
        // YAML forbids duplicate keys, and yaml-cpp would keep either: "kind: Workload"
        // then "kind: Namespace" decoded as one kind and stored as the other (found by
        // fuzz/manifest).
        if (item.first.IsScalar() && !keys.insert(item.first.Scalar()).second) {
          return absl::InvalidArgumentError(
              Cat(where, LineOf(item.first), ": the key \"", item.first.Scalar(), "\" appears twice"));
        }
        if (absl::Status st = Walk(item.first, depth + 1, where); !st.ok()) return st;
        if (absl::Status st = Walk(item.second, depth + 1, where); !st.ok()) return st;
      } else if (absl::Status st = Walk(item, depth + 1, where); !st.ok()) {
        return st;
      }
    }
    return absl::OkStatus();
  }

  ManifestBudget& budget_;
  std::string_view source_;
  size_t nodes_ = 0, scalar_bytes_ = 0;  // of the current document
};

std::string Document::Where() const {
  return DocPrefix(source, index, kind->name, Meta(*object).name());
}

absl::StatusOr<std::vector<Document>> ParseManifest(std::string_view source, std::string_view content) {
  ManifestBudget budget;
  return ParseManifest(source, content, budget);
}

absl::StatusOr<std::vector<Document>> ParseManifest(std::string_view source, std::string_view content,
                                                    ManifestBudget& budget) {
  ManifestDecoder bounds(budget, source);
  if (absl::Status st = bounds.Text(content.size()); !st.ok()) return st;
  const std::string text(content);
  if (absl::Status st = CheckTermination(source, text, budget.limits().max_nodes); !st.ok()) return st;
  std::vector<YAML::Node> nodes;
  try {
    nodes = YAML::LoadAll(text);
  } catch (const YAML::DeepRecursion& e) {
    return absl::InvalidArgumentError(Cat(source, ": line ", e.mark.line + 1, ": nested too deeply"));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(Cat(source, ": line ", e.mark.line + 1,
                                                   ", column ", e.mark.column + 1,
                                                   ": not valid YAML or JSON: ", e.msg));
  }
  std::vector<Document> docs;
  int index = 0;
  for (const auto& node : nodes) {
    if (node.IsNull()) continue;  // an empty document, e.g. after a trailing "---"
    if (absl::Status st = bounds.Document(++index, node); !st.ok()) return st;
    absl::StatusOr<Document> doc;
    try {
      doc = ParseDocument(source, index, node);
    } catch (const YAML::Exception& e) {  // a shape the checks above did not foresee
      return absl::InvalidArgumentError(Cat(source, ": document ", index, ": ", e.what()));
    }
    if (!doc.ok()) return doc.status();
    docs.push_back(std::move(*doc));
  }
  return docs;
}

}  // namespace meshplug::resources
