// Manifests as the control plane takes them: decoding (YAML or JSON, aliases, limits),
// validation, storing and translation to every workload's snapshot, and what
// `meshctl get -o yaml` prints of each object.
//
// Findings: a crash or sanitizer report, memory or time beyond the decoder's limits; an
// object that validates but does not load back from its stored form; an object whose
// `get -o yaml` output does not apply back to the same object.
//
// Input: one manifest, as `meshctl apply -f` sends it.
#include <google/protobuf/util/message_differencer.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "cli/output.h"
#include "control_plane/testing/whole_translation.h"
#include "control_plane/translate/mesh_state.h"
#include "control_plane/validation/validation.h"
#include "resources/manifest.h"
#include "fuzz/finding.h"

namespace {

using meshplug::fuzz::Finding;

using namespace meshplug;

// A tenth of the control plane's limits, so that one input stays fast.
resources::ManifestLimits FuzzLimits() {
  resources::ManifestLimits limits;
  limits.max_nodes_per_document = 10'000;
  limits.max_scalar_bytes_per_document = 400 << 10;
  limits.max_nodes = 100'000;
  limits.max_scalar_bytes = 1600 << 10;
  return limits;
}

// `get -o yaml` of the stored object applies back to the object the user wrote.
void CheckPrintedFormAppliesBack(const resources::Document& doc) {
  cli::Objects printed;
  printed.emplace_back(doc.object->New());
  printed.back()->CopyFrom(*doc.object);
  const std::string yaml = cli::ToYaml(printed, false);
  auto again = resources::ParseManifest("printed", yaml);
  if (!again.ok() || again->size() != 1) {
    Finding("manifest", "get -o yaml prints what apply refuses",
            doc.Where() + "\n" + yaml + "\n" + std::string(again.status().message()));
  }
  auto expected = resources::UserPart(*doc.object);
  auto actual = resources::UserPart(*(*again)[0].object);
  std::string difference;
  google::protobuf::util::MessageDifferencer differ;
  differ.ReportDifferencesToString(&difference);
  if (!differ.Compare(*expected, *actual)) {
    Finding("manifest", "get -o yaml does not apply back to the same object", doc.Where() + "\n" + yaml + "\n" + difference);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  resources::ManifestBudget budget(FuzzLimits());
  auto docs = resources::ParseManifest("fuzz.yaml", text, budget);
  if (!docs.ok()) return 0;

  control_plane::translate::MeshState state;
  const control_plane::validation::ValidationContext context{.plugins_enabled = true};
  for (const resources::Document& doc : *docs) {
    if (!control_plane::validation::Validate(doc, context).ok()) continue;
    CheckPrintedFormAppliesBack(doc);
    ++state.revision;
    if (!state.Put(control_plane::store::Entry{doc.key(), doc.object->SerializeAsString(), state.revision, state.revision})) {
      Finding("manifest", "a valid object does not load back from the store", doc.Where());
    }
  }
  int translated = 0;
  for (const auto& [key, workload] : state.workloads) {
    if (++translated > 16) break;
    control_plane::testing::WholeTranslation(state, workload);
  }
  return 0;
}
