#include "plugins/lua/syntax_check.h"

#include <gtest/gtest.h>

namespace meshplug::plugins::lua {
namespace {

TEST(CheckSyntax, AcceptsValidScript) {
  EXPECT_EQ(CheckSyntax("function on_request(req, ctx) return nil end", "p"), std::nullopt);
}

TEST(CheckSyntax, ReportsChunkNameAndLine) {
  const auto err = CheckSyntax("local a = 1\nfunction on_request(\n  retrun 1\nend", "token-verifier");
  ASSERT_TRUE(err.has_value());
  EXPECT_NE(err->find("token-verifier:3:"), std::string::npos) << *err;
}

TEST(CheckSyntax, RefusesBytecode) {
  const std::string bytecode = "\x1bLua\x54\x00";
  const auto err = CheckSyntax(bytecode, "p");
  ASSERT_TRUE(err.has_value());
  EXPECT_NE(err->find("binary"), std::string::npos) << *err;
}

}  // namespace
}  // namespace meshplug::plugins::lua
