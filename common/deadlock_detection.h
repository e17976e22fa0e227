// Debian's Abseil is built without NDEBUG, which turns on deadlock detection in every
// absl::Mutex (gRPC's): a global lock graph updated on each acquisition. It was 3.5% of
// the control plane's CPU while 3,000 agents connected, and 12% of the xDS load
// generator's. Release builds of Abseil have it off; our processes turn it off first thing.
#pragma once

namespace meshplug {

void DisableMutexDeadlockDetection();

}  // namespace meshplug
