// The deadlines of one io_context's connections, kept in one ordered set and checked by
// one timer. Beast's tcp_stream arms an Asio timer per read and write instead: a timer-queue
// insertion, a cancellation that posts a handler through the event loop, and, when the new
// timer is the earliest (a request timeout usually is), a timerfd_settime system call, on
// every operation. Here the timer is re-armed only for a deadline earlier than the one it
// waits for, and a deadline moved later or cleared keeps its place in the set until its old
// time comes (then it moves, or leaves): a connection that moves its deadline forward on
// every request, as keep-alive connections do, costs no tree operation per request.
//
// Not thread-safe: for io_contexts run by one thread (every one in meshplug), and used only
// from their handlers and coroutines.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/intrusive/set.hpp>
#include <chrono>
#include <optional>

namespace meshplug::net {

class Deadlines : public boost::asio::execution_context::service {
 public:
  using Clock = std::chrono::steady_clock;

  // Something with a deadline. Expired() runs on the io_context's thread once the deadline
  // has passed, unless it was set again or cleared before.
  class Entry : public boost::intrusive::set_base_hook<boost::intrusive::link_mode<boost::intrusive::safe_link>> {
   public:
    virtual ~Entry() = default;
    virtual void Expired() = 0;

    // Whether a deadline is set (and has not passed yet).
    bool armed() const { return is_linked() && due_ != Clock::time_point::max(); }

   private:
    friend class Deadlines;
    Clock::time_point at_;   // its place in the set: at or before due_
    Clock::time_point due_;  // the deadline; max once cleared
  };

  static boost::asio::execution_context::id id;

  explicit Deadlines(boost::asio::execution_context& context);

  // The service of the execution context `executor` runs on.
  static Deadlines& For(const boost::asio::any_io_executor& executor);

  void Set(Entry& entry, Clock::time_point at);
  void Clear(Entry& entry);
  // Takes an entry out of the set now, before it is destroyed. The timer stops waiting once
  // nothing is left, so that an io_context::run() can return.
  void Forget(Entry& entry);

 private:
  struct ByTime {
    bool operator()(const Entry& a, const Entry& b) const { return a.at_ < b.at_; }
  };

  void shutdown() override;
  // Waits for the earliest deadline, if the timer waits for a later one (or none).
  void Arm();
  void Fire();

  std::optional<boost::asio::steady_timer> timer_;  // on the first For's executor
  Clock::time_point armed_at_ = Clock::time_point::max();
  boost::intrusive::multiset<Entry, boost::intrusive::compare<ByTime>> entries_;
};

}  // namespace meshplug::net
