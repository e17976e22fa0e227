// Mesh states built from manifests, for tests of what reads them.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "control_plane/translate/mesh_state.h"
#include "resources/manifest.h"

namespace meshplug::control_plane::testing {

// Adds every document of `yaml` to `state`, each one revision newer than the last.
inline void AddYaml(translate::MeshState& state, const std::string& yaml) {
  auto docs = resources::ParseManifest("test", yaml);
  ASSERT_TRUE(docs.ok()) << docs.status();
  for (auto& d : *docs) {
    store::Entry e{d.key(), d.object->SerializeAsString(), ++state.revision, state.revision};
    ASSERT_TRUE(state.Put(e));
  }
}

}  // namespace meshplug::control_plane::testing
