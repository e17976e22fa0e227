#include "common/log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "common/eventually.h"

namespace meshplug::log {
namespace {

// Runs `fn` with stderr sent to a file; what it wrote.
template <typename Fn>
std::string Captured(Fn fn) {
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path = std::string(dir ? dir : "/tmp") + "/log_test.txt";
  std::fflush(stderr);
  const int saved = dup(2);
  FILE* file = std::fopen(path.c_str(), "w");
  dup2(fileno(file), 2);
  fn();
  std::fflush(stderr);
  dup2(saved, 2);
  close(saved);
  std::fclose(file);
  std::ifstream in(path);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

size_t Count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

TEST(LogTest, RepeatedLinesAreLimitedAndTheNextOneSaysHowManyWereDropped) {
  SetRepeatLimit(3, std::chrono::milliseconds(200));
  const auto first = std::chrono::steady_clock::now();
  std::string out = Captured([] {
    for (int i = 0; i < 50; ++i) Warn("agent rejected a response", {{"n", std::to_string(i)}});
    Warn("another message");
  });
  EXPECT_EQ(Count(out, "agent rejected a response"), 3u) << out;
  EXPECT_EQ(Count(out, "another message"), 1u);
  // After the window, the next line carries the count of what was dropped.
  ASSERT_TRUE(Eventually([&] { return std::chrono::steady_clock::now() - first > std::chrono::milliseconds(250); }));
  out = Captured([] { Warn("agent rejected a response"); });
  EXPECT_NE(out.find("\"dropped_similar\":\"47\""), std::string::npos) << out;
  SetRepeatLimit(10, std::chrono::seconds(10));
}

TEST(LogTest, LongValuesAreCutAndBytesThatAreNotUtf8AreEscaped) {
  const std::string huge(1 << 20, 'x');
  std::string out = Captured([&] { Warn("huge", {{"error", huge}, {"raw", std::string("a\xff\xfe" "b\xc3\xa9")}}); });
  EXPECT_LT(out.size(), 4 * kMaxFieldBytes);
  EXPECT_NE(out.find(std::to_string(huge.size() - kMaxFieldBytes) + " more bytes"), std::string::npos);
  EXPECT_NE(out.find("\"raw\":\"a\\ufffd\\ufffdb\xc3\xa9\""), std::string::npos) << out;
}

}  // namespace
}  // namespace meshplug::log
