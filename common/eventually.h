// Waiting on a condition with a deadline (tests, the demo): never a fixed sleep.
#pragma once

#include <chrono>
#include <thread>

namespace meshplug {

// Polls `cond` every 2 ms until it holds (true) or `timeout` passes (false).
template <typename Cond>
bool Eventually(Cond&& cond, std::chrono::milliseconds timeout = std::chrono::milliseconds(10000)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

}  // namespace meshplug
