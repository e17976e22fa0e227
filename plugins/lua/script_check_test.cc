#include "plugins/lua/script_check.h"

#include <gtest/gtest.h>

namespace meshplug::plugins::lua {
namespace {

TEST(CheckScript, AcceptsValidScript) {
  EXPECT_EQ(CheckScript("function on_request(req, ctx) return nil end", "p"), std::nullopt);
}

TEST(CheckScript, ReportsChunkNameAndLine) {
  const auto err = CheckScript("local a = 1\nfunction on_request(\n  retrun 1\nend", "token-verifier");
  ASSERT_TRUE(err.has_value());
  EXPECT_NE(err->find("token-verifier:3:"), std::string::npos) << *err;
}

TEST(CheckScript, RefusesBytecode) {
  const std::string bytecode = "\x1bLua\x54\x00";
  const auto err = CheckScript(bytecode, "p");
  ASSERT_TRUE(err.has_value());
  EXPECT_NE(err->find("binary"), std::string::npos) << *err;
}

// What would fail on every agent fails at apply.
TEST(CheckScript, RunsTheTopLevelUnderTheAgentsLimits) {
  const auto loop = CheckScript("while true do end", "spin");
  ASSERT_TRUE(loop.has_value());
  EXPECT_EQ(loop->rfind("does not load: plugin spin: spin:1: instruction limit of", 0), 0u) << *loop;
  const auto error = CheckScript("error('no config')", "boom");
  ASSERT_TRUE(error.has_value());
  EXPECT_NE(error->find("boom:1: no config"), std::string::npos) << *error;
  const auto phase = CheckScript("on_request = 42", "p");
  ASSERT_TRUE(phase.has_value());
  EXPECT_NE(phase->find("on_request must be a function"), std::string::npos) << *phase;
  const auto pattern = CheckScript("local x = string.rep('a', 1200):find('.-.-.-x')", "slow");
  ASSERT_TRUE(pattern.has_value());
  EXPECT_NE(pattern->find("limit"), std::string::npos) << *pattern;
}

}  // namespace
}  // namespace meshplug::plugins::lua
