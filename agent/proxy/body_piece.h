// How much of a body the proxy reads, relays or buffers at a time, on every protocol.
#pragma once

#include <cstddef>

namespace meshplug::agent::proxy {

inline constexpr size_t kBodyPieceBytes = 64 * 1024;

}  // namespace meshplug::agent::proxy
