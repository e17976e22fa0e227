// Semantic checks of decoded resources (the decoder already enforced shapes and types).
#pragma once

#include "absl/status/status.h"
#include "control_plane/resources/manifest.h"

namespace meshplug::resources {

struct ValidationContext {
  // MeshConfig spec.featureFlags.enablePluginPolicy as it will be after the apply.
  bool plugins_enabled = false;
};

// The error reads "<document>: <field path>: <reason>".
absl::Status Validate(const Document& doc, const ValidationContext& ctx);

// The four chain names, in SPEC order.
const std::vector<std::string>& ChainNames();

}  // namespace meshplug::resources
