// Reconnect delays: exponential, bounded, jittered, so that many clients that lost the
// same server do not all come back at once (the agent's xDS client, the xDS load
// generator's simulated agents).
#pragma once

#include <chrono>

namespace meshplug {

// The agent's defaults (--xds_backoff_base, --xds_backoff_max).
inline constexpr std::chrono::milliseconds kBackoffBase{100};
inline constexpr std::chrono::milliseconds kBackoffMax{10'000};

// The reconnect delay after `attempt` failed attempts (0 for the first retry):
// min(max, base × 2^attempt) scaled by `unit` ∈ [0, 1) into its upper half (50–100 %).
std::chrono::milliseconds BackoffDelay(int attempt, std::chrono::milliseconds base, std::chrono::milliseconds max,
                                       double unit);

}  // namespace meshplug
