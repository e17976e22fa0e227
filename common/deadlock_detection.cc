#include "common/release_mutexes.h"

#include "absl/synchronization/mutex.h"

namespace meshplug {

void UseReleaseMutexes() { absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore); }

}  // namespace meshplug
