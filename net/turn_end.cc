#include "net/turn_end.h"

#include <boost/asio/execution/context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/query.hpp>
#include <algorithm>
#include <utility>

namespace meshplug::net {

namespace asio = boost::asio;

asio::execution_context::id TurnEnd::id;

TurnEnd::TurnEnd(asio::execution_context& context) : asio::execution_context::service(context) {}

TurnEnd& TurnEnd::For(const asio::any_io_executor& executor) {
  TurnEnd& turn_end = asio::use_service<TurnEnd>(asio::query(executor, asio::execution::context));
  if (!turn_end.executor_) turn_end.executor_ = executor;
  return turn_end;
}

void TurnEnd::Add(std::shared_ptr<Entry> entry) {
  due_.push_back(std::move(entry));
  if (posted_) return;
  posted_ = true;
  // A post from the loop's thread runs after the handlers already queued, which include
  // the ready ones; the loop polls once more (without waiting) before it.
  asio::post(executor_, [this] { Run(); });
}

void TurnEnd::Run() {
  if (due_.size() > 1 && due_.size() < kFew && waited_ < kMostWaits) {
    ++waited_;
    asio::post(executor_, [this] { Run(); });
    return;
  }
  RunNow();
}

void TurnEnd::RunNow() {
  waited_ = 0;
  posted_ = false;
  gathering_ = due_.size() > 1;
  if (gathering_) {
    try_every_ = kFirstTry;
    since_try_ = 0;
  } else if (trying_) {
    try_every_ = std::min(2 * try_every_, kLastTry);
  }
  trying_ = false;
  running_.swap(due_);  // an entry added while these run goes at the end of the next turn
  for (const std::shared_ptr<Entry>& entry : running_) entry->AtTurnEnd();
  running_.clear();
}

void TurnEnd::shutdown() {
  RunNow();  // the loop that would have run them has stopped: what is due goes now
  due_.clear();
}

}  // namespace meshplug::net
