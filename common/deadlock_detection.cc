#include "common/deadlock_detection.h"

#include "absl/synchronization/mutex.h"

namespace meshplug {

void DisableMutexDeadlockDetection() { absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore); }

}  // namespace meshplug
