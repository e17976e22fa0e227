#include "common/agent_id.h"

namespace meshplug {

std::string AgentId(std::string_view ns, std::string_view name) {
  std::string id(ns);
  id += '/';
  id += name;
  return id;
}

std::optional<std::pair<std::string, std::string>> SplitAgentId(std::string_view id) {
  const size_t slash = id.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == id.size() ||
      id.find('/', slash + 1) != std::string_view::npos) {
    return std::nullopt;
  }
  return std::pair<std::string, std::string>(id.substr(0, slash), id.substr(slash + 1));
}

}  // namespace meshplug
