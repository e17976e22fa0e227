// Labels bound to a workload by its join token: they decide which Services select it, so
// an agent that could claim any labels could draw another service's traffic (and the
// tokens in it) within its namespace. With a binding, the agent's registration must carry
// exactly those labels; without one, its labels are its claim (as a pod's in Kubernetes).
#pragma once

#include <map>
#include <string>

#include "absl/status/status.h"
#include "control_plane/store/store.h"

namespace meshplug::control_plane::security {

using Labels = std::map<std::string, std::string>;

// Binds `labels` to `workload` ("<namespace>/<name>"), replacing an earlier binding.
absl::Status BindLabels(store::Store& store, const std::string& workload, const Labels& labels);

// OK when `workload` has no binding or `labels` are exactly the bound ones;
// PERMISSION_DENIED naming both otherwise.
absl::Status CheckBoundLabels(store::Store& store, const std::string& workload, const Labels& labels);

}  // namespace meshplug::control_plane::security
