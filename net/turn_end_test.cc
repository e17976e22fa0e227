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

TEST(TurnEndTest, HoldingIsWorthwhileWhileTurnsGatherSeveralEntries) {
  asio::io_context context;
  TurnEnd& turn_end = TurnEnd::For(context.get_executor());
  std::string log;
  // Alone: now and then, to find out.
  int yes = 0;
  for (int i = 0; i < 64; ++i) yes += turn_end.Worthwhile();
  EXPECT_GT(yes, 0);
  EXPECT_LT(yes, 16);
  // Once one is due, every write of the turn joins it.
  turn_end.Add(std::make_shared<Mark>(log, 'a'));
  for (int i = 0; i < 16; ++i) EXPECT_TRUE(turn_end.Worthwhile());
  turn_end.Add(std::make_shared<Mark>(log, 'b'));
  context.run();
  EXPECT_EQ(log, "ab");
  // A turn that gathered two: every call says yes.
  for (int i = 0; i < 16; ++i) EXPECT_TRUE(turn_end.Worthwhile());
  // A turn that gathered one: back to now and then.
  turn_end.Add(std::make_shared<Mark>(log, 'c'));
  context.restart();
  context.run();
  yes = 0;
  for (int i = 0; i < 64; ++i) yes += turn_end.Worthwhile();
  EXPECT_LT(yes, 16);
}

}  // namespace
}  // namespace meshplug::net
