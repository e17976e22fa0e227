#include "net/turn_end.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <memory>
#include <string>

namespace meshplug::net {
namespace {

namespace asio = boost::asio;

struct Mark final : TurnEnd::Entry {
  Mark(std::string& log, char c) : log(log), c(c) {}
  void AtTurnEnd() override { log += c; }
  std::string& log;
  char c;
};

TEST(TurnEndTest, EntriesRunOncePerAddAfterTheHandlersAlreadyQueued) {
  asio::io_context context;
  TurnEnd& turn_end = TurnEnd::For(context.get_executor());
  std::string log;
  auto e = std::make_shared<Mark>(log, 'e');
  asio::post(context, [&] { log += 'a'; });
  asio::post(context, [&] {
    log += 'h';
    turn_end.Add(e);
    turn_end.Add(std::make_shared<Mark>(log, 'f'));
  });
  context.run();
  EXPECT_EQ(log, "ahef");
  context.restart();
  context.run();
  EXPECT_EQ(log, "ahef");  // once for each Add
}

TEST(TurnEndTest, AnEntryAddedWhileEntriesRunRunsAtTheNextTurnsEnd) {
  asio::io_context context;
  TurnEnd& turn_end = TurnEnd::For(context.get_executor());
  std::string log;
  struct Again final : TurnEnd::Entry {
    Again(TurnEnd& t, std::string& log) : t(t), log(log) {}
    void AtTurnEnd() override {
      log += 'x';
      if (log.size() < 3) t.Add(std::make_shared<Again>(t, log));
    }
    TurnEnd& t;
    std::string& log;
  };
  turn_end.Add(std::make_shared<Again>(turn_end, log));
  EXPECT_EQ(context.poll_one(), 1u);
  EXPECT_EQ(log, "x");
  context.run();
  EXPECT_EQ(log, "xxx");
}

TEST(TurnEndTest, AFewEntriesWaitUpToThreeTurnsForOthersAndALoneOneDoesNot) {
  asio::io_context context(1);
  TurnEnd& turn_end = TurnEnd::For(context.get_executor());
  std::string log;
  turn_end.Add(std::make_shared<Mark>(log, 'a'));
  EXPECT_EQ(context.poll_one(), 1u);
  EXPECT_EQ(log, "a");  // alone: at once
  turn_end.Add(std::make_shared<Mark>(log, 'b'));
  turn_end.Add(std::make_shared<Mark>(log, 'c'));
  context.restart();
  for (int turn = 0; turn < 3; ++turn) {
    EXPECT_EQ(context.poll_one(), 1u);
    EXPECT_EQ(log, "a");                   // waiting for others,
    EXPECT_TRUE(turn_end.Worthwhile());  // which are held to join
  }
  turn_end.Add(std::make_shared<Mark>(log, 'd'));  // joins them
  EXPECT_EQ(context.poll_one(), 1u);
  EXPECT_EQ(log, "abcd");
  for (int i = 0; i < 7; ++i) turn_end.Add(std::make_shared<Mark>(log, 'e'));
  context.restart();
  EXPECT_EQ(context.poll_one(), 1u);
  EXPECT_EQ(log, "abcd");  // seven: still a few
  turn_end.Add(std::make_shared<Mark>(log, 'e'));
  EXPECT_EQ(context.poll_one(), 1u);
  EXPECT_EQ(log, "abcdeeeeeeee");  // eight: enough, at once
  EXPECT_EQ(context.poll(), 0u);   // nothing left queued
}

// The calls until Worthwhile says yes.
int CallsUntilYes(TurnEnd& turn_end) {
  for (int calls = 1; calls <= 1000; ++calls) {
    if (turn_end.Worthwhile()) return calls;
  }
  return -1;
}

TEST(TurnEndTest, HoldingIsWorthwhileWhileTurnsGatherSeveralEntries) {
  asio::io_context context(1);  // as the agent's workers run
  TurnEnd& turn_end = TurnEnd::For(context.get_executor());
  std::string log;
  auto turn = [&](int entries) {
    for (int i = 0; i < entries; ++i) turn_end.Add(std::make_shared<Mark>(log, 'e'));
    context.restart();
    context.run();
  };
  // Alone: the 8th call tries; after each try whose turn gathered one entry, twice as many
  // calls later, up to 256.
  for (int expected : {8, 16, 32, 64, 128, 256, 256}) {
    EXPECT_EQ(CallsUntilYes(turn_end), expected);
    turn(1);
  }
  // Once one is due, every call of the turn says yes.
  EXPECT_EQ(CallsUntilYes(turn_end), 256);
  turn_end.Add(std::make_shared<Mark>(log, 'e'));
  for (int i = 0; i < 16; ++i) EXPECT_TRUE(turn_end.Worthwhile());
  turn(1);  // two entries at this turn's end
  for (int i = 0; i < 16; ++i) EXPECT_TRUE(turn_end.Worthwhile());
  // A turn that gathered one: the 8th call tries again.
  turn(1);
  EXPECT_EQ(CallsUntilYes(turn_end), 8);
}

}  // namespace
}  // namespace meshplug::net
