// The HELP text of every metric meshplug exports, so /stats and /metrics pass
// `promtool check metrics` and docs/observability.md can list them.
#pragma once

#include <string_view>

namespace meshplug {

// Empty for a name the catalogue does not have.
std::string_view MetricHelp(std::string_view name);

}  // namespace meshplug
