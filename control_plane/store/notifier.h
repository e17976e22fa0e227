// Fan-out of "a commit happened at revision N" to subscribers; shared by store backends.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>

namespace meshplug::control_plane::store {

class Notifier {
 public:
  using Fn = std::function<void(int64_t)>;

  std::shared_ptr<void> Subscribe(Fn fn) {
    std::lock_guard lock(state_->mu);
    auto it = state_->subscribers.insert(state_->subscribers.end(), std::move(fn));
    // The handle removes the subscriber; it keeps the state alive if it outlives us.
    return std::shared_ptr<void>(nullptr, [state = state_, it](void*) {
      std::lock_guard lock(state->mu);
      state->subscribers.erase(it);
    });
  }

  // Subscribers run under the lock, so releasing a handle waits for a running callback:
  // a subscriber may be destroyed as soon as its handle is gone (the admin Watch relies on it).
  void Notify(int64_t revision) {
    std::lock_guard lock(state_->mu);
    for (auto& fn : state_->subscribers) fn(revision);
  }

 private:
  struct State {
    std::mutex mu;
    std::list<Fn> subscribers;
  };
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

}  // namespace meshplug::control_plane::store
