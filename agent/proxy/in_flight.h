#pragma once

#include <atomic>
#include <cstdint>

namespace meshplug::agent::proxy {

// Counts a request or connection as in progress for as long as it lives, so a drain can
// wait for the count to reach zero.
class InFlight {
 public:
  explicit InFlight(std::atomic<int64_t>* counter) : counter_(counter) { counter_->fetch_add(1); }
  ~InFlight() { counter_->fetch_sub(1); }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

 private:
  std::atomic<int64_t>* counter_;
};

}  // namespace meshplug::agent::proxy
