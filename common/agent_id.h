// How the control plane and agents name an agent: "<namespace>/<name>" of its workload.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace meshplug {

std::string AgentId(std::string_view ns, std::string_view name);

// (namespace, name) of an agent id; nullopt when it is not "<namespace>/<name>".
std::optional<std::pair<std::string, std::string>> SplitAgentId(std::string_view id);

}  // namespace meshplug
