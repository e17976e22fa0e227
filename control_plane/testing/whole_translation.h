// For tests that check a whole snapshot: what an agent receives, assembled.
#pragma once

#include "control_plane/translate/translate.h"

namespace meshplug::control_plane::testing {

// The agent's own resources over the shared destinations, through the encoding the ADS
// server sends (so the version is the one the agent sees), with the translation's report.
translate::Translation WholeTranslation(const translate::MeshState& state, const mesh::v1::Workload& agent);

}  // namespace meshplug::control_plane::testing
