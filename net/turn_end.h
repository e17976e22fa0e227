// Work done once at the end of an io_context's current turn: after the handlers that are
// ready now (the ones the last epoll_wait gave, and those they posted), before the loop
// waits again. Stream holds small writes until then, so that the writes of one turn leave
// together, as HAProxy's do: a peer on another core is woken once for them instead of once
// for each (a wake-up costs the sender an inter-processor interrupt; docs/benchmarks.md §4.2).
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
  // entries, and while one is already due. Otherwise (one request at a time) it would only
  // add a turn of the loop, so only one call in kProbeEvery says yes, to find out when the
  // turns gather several again.
  bool Worthwhile() { return posted_ || gathering_ || ++since_probe_ % kProbeEvery == 0; }

 private:
  void shutdown() override;
  void Run();

  boost::asio::any_io_executor executor_;  // the first For's
  std::vector<std::shared_ptr<Entry>> due_;
  std::vector<std::shared_ptr<Entry>> running_;  // due_'s storage, kept between turns
  bool posted_ = false;
  static constexpr unsigned kProbeEvery = 8;
  bool gathering_ = false;  // the last turn's end ran more than one entry
  unsigned since_probe_ = 0;
};

}  // namespace meshplug::net
