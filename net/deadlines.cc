#include "net/deadlines.h"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/query.hpp>

namespace meshplug::net {

namespace asio = boost::asio;

asio::execution_context::id Deadlines::id;

Deadlines::Deadlines(asio::execution_context& context) : asio::execution_context::service(context) {}

Deadlines& Deadlines::For(const asio::any_io_executor& executor) {
  Deadlines& deadlines = asio::use_service<Deadlines>(asio::query(executor, asio::execution::context));
  if (!deadlines.timer_) deadlines.timer_.emplace(executor);
  return deadlines;
}

void Deadlines::Set(Entry& entry, Clock::time_point at) {
  if (entry.is_linked()) {
    if (at >= entry.at_) {
      entry.due_ = at;  // moved when its old time comes (Fire)
      return;
    }
    entries_.erase(entries_.iterator_to(entry));
  }
  entry.at_ = entry.due_ = at;
  entries_.insert(entry);
  if (at < armed_at_) Arm();
}

void Deadlines::Clear(Entry& entry) { entry.due_ = Clock::time_point::max(); }

void Deadlines::Forget(Entry& entry) {
  if (!entry.is_linked()) return;
  entries_.erase(entries_.iterator_to(entry));
  if (entries_.empty() && armed_at_ != Clock::time_point::max()) {
    armed_at_ = Clock::time_point::max();
    timer_->cancel();
  }
}

void Deadlines::Arm() {
  if (!timer_ || entries_.empty() || entries_.begin()->at_ >= armed_at_) return;
  armed_at_ = entries_.begin()->at_;
  timer_->expires_at(armed_at_);  // cancels the wait for a later one, if any
  timer_->async_wait([this](const boost::system::error_code& ec) {
    if (!ec) Fire();
  });
}

void Deadlines::Fire() {
  armed_at_ = Clock::time_point::max();
  const Clock::time_point now = Clock::now();
  while (!entries_.empty() && entries_.begin()->at_ <= now) {
    Entry& entry = *entries_.begin();
    entries_.erase(entries_.begin());
    if (entry.due_ == Clock::time_point::max()) continue;  // cleared
    if (entry.due_ > now) {  // moved later: its place now
      entry.at_ = entry.due_;
      entries_.insert(entry);
      continue;
    }
    entry.Expired();
  }
  Arm();
}

void Deadlines::shutdown() {
  entries_.clear();  // the entries outlive nothing that would expire them
  armed_at_ = Clock::time_point::max();
  // Registered after this service, the timer's service is destroyed before it: the timer
  // goes first.
  timer_.reset();
}

}  // namespace meshplug::net
