#include "common/random.h"

#include <random>

namespace meshplug {

uint64_t RandomU64() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng();
}

}  // namespace meshplug
