// The built-in chain modules (docs/spec.md §5), as instances of the plugin interface.
//
// Each Make* returns a fresh instance for one chain of one chain set. Instances read the
// chain set's MeshView and keep cross-snapshot state (metrics, breakers, token buckets)
// in BuiltinState, which outlives every chain set so a swap does not reset it.
#pragma once

#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include "agent/routing/mesh_view.h"
#include "plugins/api/plugin.h"
#include "plugins/builtin/state.h"

namespace meshplug::plugins::builtin {

namespace routing = ::meshplug::agent::routing;

struct BuiltinEnv {
  std::shared_ptr<const routing::MeshView> mesh;
  bool inbound = false;  // which chains the instance serves: inbound-* or outbound-*
  BuiltinState* state = nullptr;
};

// The module named `name` (common/chain_info.h's builtin_names) for an http or tcp chain;
// NotFound names the unknown module.
absl::StatusOr<std::shared_ptr<plugins::HttpPlugin>> MakeHttpBuiltin(std::string_view name,
                                                                     const BuiltinEnv& env);
absl::StatusOr<std::shared_ptr<plugins::TcpPlugin>> MakeTcpBuiltin(std::string_view name,
                                                                   const BuiltinEnv& env);

}  // namespace meshplug::plugins::builtin
