// A task run every interval on a thread of its own until stopped (or destroyed): the
// control plane's sharing of agents' status, its following of the CA, the etcd lease
// keeper and the leader's orphan scan.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace meshplug {

class Periodic {
 public:
  Periodic() = default;
  Periodic(const Periodic&) = delete;
  Periodic& operator=(const Periodic&) = delete;
  ~Periodic() { Stop(); }

  // Runs `fn` every `every`, the first time after one interval.
  void Start(std::chrono::milliseconds every, std::function<void()> fn) {
    thread_ = std::thread([this, every, fn = std::move(fn)] {
      std::unique_lock lock(mu_);
      while (!cv_.wait_for(lock, every, [&] { return stopping_; })) {
        lock.unlock();
        fn();
        lock.lock();
      }
    });
  }

  // Waits for a run under way to end; safe to call more than once.
  void Stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace meshplug
