// Semantic checks of decoded resources (the decoder already enforced shapes and types).
#pragma once

#include "absl/status/status.h"
#include "resources/manifest.h"

namespace meshplug::control_plane::validation {

using resources::Document;

struct ValidationContext {
  // MeshConfig spec.featureFlags.enablePluginPolicy as it will be after the apply.
  bool plugins_enabled = false;
};

// The error reads "<document>: <field path>: <reason>".
absl::Status Validate(const Document& doc, const ValidationContext& ctx);

}  // namespace meshplug::control_plane::validation
