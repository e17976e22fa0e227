#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace meshplug::plugins::lua {

// What the control plane checks when a Plugin is applied: the script compiles as a Lua
// 5.4 text chunk, and it loads the way every agent will load it — the top level runs in
// the sandbox under the agents' default limits, phase functions and body flags are what
// they must be. Returns the problem ("Lua syntax error: …" or "does not load: …", naming
// the chunk and the line) or nullopt when agents will run it.
std::optional<std::string> CheckScript(std::string_view script, std::string_view plugin);

}  // namespace meshplug::plugins::lua
