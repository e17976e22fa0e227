// Waiting on a condition with a deadline (tests, the demo, the control plane waiting for
// its own renewed certificate to be served): never a fixed sleep.
#pragma once

#include <chrono>
#include <thread>

namespace meshplug {

// Polls `cond` every `every` (2 ms) until it holds (true) or `timeout` passes (false).
template <typename Cond>
bool Eventually(Cond&& cond, std::chrono::milliseconds timeout = std::chrono::milliseconds(10000),
                std::chrono::milliseconds every = std::chrono::milliseconds(2)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(every);
  }
  return true;
}

}  // namespace meshplug
