// When a burst of changes is due: `quiet` after the last change, but never later than
// `max_delay` after the first. Pure: the caller gives the time.
#pragma once

#include <chrono>
#include <optional>

namespace meshplug::control_plane::controller {

class Debouncer {
 public:
  using Clock = std::chrono::steady_clock;

  Debouncer(std::chrono::milliseconds quiet, std::chrono::milliseconds max_delay)
      : quiet_(quiet), max_delay_(max_delay) {}

  void Changed(Clock::time_point now) {
    if (!first_) first_ = now;
    last_ = now;
  }
  // When the pending changes are due; nullopt when none are pending.
  std::optional<Clock::time_point> Due() const {
    if (!first_) return std::nullopt;
    return std::min(*last_ + quiet_, *first_ + max_delay_);
  }
  // Whether the pending changes are due because the first is `max_delay` old while more
  // kept coming (a burst that has not ended), rather than after `quiet`.
  bool Bursting() const { return first_ && *first_ + max_delay_ < *last_ + quiet_; }
  std::chrono::milliseconds quiet() const { return quiet_; }
  // The pending changes are being handled.
  void Reset() { first_.reset(), last_.reset(); }

 private:
  const std::chrono::milliseconds quiet_, max_delay_;
  std::optional<Clock::time_point> first_, last_;
};

}  // namespace meshplug::control_plane::controller
