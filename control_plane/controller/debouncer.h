// When a burst of changes is due: `quiet` after the last change, but never later than
// `max_delay` after the first. A change that comes after `quiet` without any is due at
// once, unless the caller says such changes come in waves: waiting is for the changes that
// follow, and a lone change (one `meshctl apply`) would only wait. Pure: the caller gives
// the time.
#pragma once

#include <chrono>
#include <optional>

namespace meshplug::control_plane::controller {

class Debouncer {
 public:
  using Clock = std::chrono::steady_clock;

  Debouncer(std::chrono::milliseconds quiet, std::chrono::milliseconds max_delay)
      : quiet_(quiet), max_delay_(max_delay) {}

  // `may_lead`: false for changes that come in waves (agents registering as pods start),
  // where the first published alone would cost a second update of every agent.
  void Changed(Clock::time_point now, bool may_lead = true) {
    if (!first_) {
      first_ = now;
      leading_ = may_lead && (!previous_ || now - *previous_ >= quiet_);
    }
    last_ = now;
  }
  // When the pending changes are due; nullopt when none are pending.
  std::optional<Clock::time_point> Due() const {
    if (!first_) return std::nullopt;
    if (leading_) return first_;
    return std::min(*last_ + quiet_, *first_ + max_delay_);
  }
  // Whether the pending changes are due because the first is `max_delay` old while more
  // kept coming (a burst that has not ended), rather than after `quiet`.
  bool Bursting() const { return first_ && *first_ + max_delay_ < *last_ + quiet_; }
  std::chrono::milliseconds quiet() const { return quiet_; }
  // The pending changes are being handled.
  void Reset() {
    if (last_) previous_ = last_;
    first_.reset(), last_.reset();
  }

 private:
  const std::chrono::milliseconds quiet_, max_delay_;
  std::optional<Clock::time_point> first_, last_;
  bool leading_ = false;  // the pending changes began after a quiet spell
  std::optional<Clock::time_point> previous_;  // the last change handled
};

}  // namespace meshplug::control_plane::controller
