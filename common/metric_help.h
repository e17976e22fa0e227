// The HELP text of every metric meshplug exports, so /stats and /metrics pass
// `promtool check metrics` and docs/observability.md can list them.
#pragma once

#include <string_view>

namespace meshplug {

// Empty for a name the catalogue does not have.
std::string_view MetricHelp(std::string_view name);
// For the test that keeps the catalogue sorted.
bool MetricHelpSorted();

}  // namespace meshplug
