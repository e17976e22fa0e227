// One random generator per thread, seeded once, for picks that must not restart with
// every snapshot (weighted splits, load balancer start offsets, tracing ids).
#pragma once

#include <cstdint>

namespace meshplug {

// A uniformly distributed number from this thread's generator.
uint64_t RandomU64();

}  // namespace meshplug
