// Work done once at the end of an io_context's current turn: after the handlers that are
// ready now (the ones the last epoll_wait gave), before the loop waits again. Stream holds
// small writes until then, so that the writes of one turn leave together, as HAProxy's do:
// a peer on another core is woken once for them instead of once for each (a wake-up costs
// the sender an inter-processor interrupt; docs/benchmarks.md §4.2).
//
// A turn's end with a few entries (2 to 7) waits up to three more turns for others. Where
// one request's work spreads over several turns (an SSL stream's reads complete at once,
// and Asio runs each such completion after the next poll), turns are short and each ends
// with few writes; waiting let the mTLS hop's writes leave in groups again (1.3× the
// requests/s; docs/benchmarks.md §4.2). A lone entry (one request at a time) does not wait.
//
// Not thread-safe: for io_contexts run by one thread (every one in meshplug).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/execution_context.hpp>
#include <memory>
#include <vector>

namespace meshplug::net {

class TurnEnd : public boost::asio::execution_context::service {
 public:
  class Entry {
   public:
    virtual void AtTurnEnd() = 0;

   protected:
    ~Entry() = default;
  };

  static boost::asio::execution_context::id id;

  explicit TurnEnd(boost::asio::execution_context& context);

  // The service of the execution context `executor` runs on.
  static TurnEnd& For(const boost::asio::any_io_executor& executor);

  // `entry`'s AtTurnEnd runs at the end of this turn, held until then; once for each Add.
  void Add(std::shared_ptr<Entry> entry);

  // Whether work is worth holding for the end of the turn: while the turns gather several
  // entries, and while one is already due. Otherwise (one request at a time) holding would
  // only add a turn of the loop, so only now and then a call says yes, to find out whether
  // the turns gather several again: the 8th call after the turns stopped gathering, and
  // after each such try that gathered one entry, twice as many calls later, up to 256.
  bool Worthwhile() {
    if (posted_ || gathering_) return true;
    if (++since_try_ < try_every_) return false;
    since_try_ = 0;
    trying_ = true;
    return true;
  }

 private:
  void shutdown() override;
  void Run();     // at a turn's end: runs the entries, or waits another turn for more
  void RunNow();

  boost::asio::any_io_executor executor_;  // the first For's
  std::vector<std::shared_ptr<Entry>> due_;
  std::vector<std::shared_ptr<Entry>> running_;  // due_'s storage, kept between turns
  bool posted_ = false;
  static constexpr size_t kFew = 8;
  static constexpr int kMostWaits = 3;
  int waited_ = 0;  // turns this turn's end has waited
  static constexpr unsigned kFirstTry = 8, kLastTry = 256;
  bool gathering_ = false;  // the last turn's end ran more than one entry
  bool trying_ = false;     // Worthwhile said yes to find out
  unsigned try_every_ = kFirstTry;
  unsigned since_try_ = 0;
};

}  // namespace meshplug::net
