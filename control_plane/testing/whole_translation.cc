#include "control_plane/testing/whole_translation.h"

#include "control_plane/xds/resources.h"

namespace meshplug::control_plane::testing {

translate::Translation WholeTranslation(const translate::MeshState& state, const mesh::v1::Workload& agent) {
  xds::ResourceInterner interner;
  const v1::Snapshot all = translate::TranslateDestinations(state);
  const auto scope = translate::EgressScope(state, agent.metadata().namespace_());
  const v1::Snapshot destinations = scope ? translate::ScopeDestinations(all, *scope) : all;
  const auto shared = xds::ToResources(destinations, interner);
  translate::Translation t = translate::Translate(state, destinations, agent);
  t.snapshot = xds::ToSnapshot(*xds::ToResources(t.snapshot, interner, shared));
  return t;
}

}  // namespace meshplug::control_plane::testing
