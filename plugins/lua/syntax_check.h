#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace meshplug::plugins::lua {

// Compiles `script` as a Lua 5.4 text chunk without running it, as the control plane
// does when a Plugin is applied. Returns Lua's error message (it names the chunk and the
// line) or nullopt when the script compiles.
std::optional<std::string> CheckSyntax(std::string_view script, std::string_view chunk_name);

}  // namespace meshplug::plugins::lua
