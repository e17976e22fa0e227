#include "common/strings.h"

#include <gtest/gtest.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>

namespace meshplug {
namespace {

template <typename... Args>
std::string Streamed(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

enum Plain { kSeven = 7 };

// Cat prints every argument as a stream would: messages keep their wording.
TEST(CatTest, PrintsWhatAStreamPrints) {
  const std::string s = "text";
  const std::string_view v = "view";
  const char* p = "pointer";
  const uint8_t byte = 'A';
  EXPECT_EQ(Cat(s, v, p, "literal", 'c', byte), Streamed(s, v, p, "literal", 'c', byte));
  EXPECT_EQ(Cat(0, -1, INT_MIN, LLONG_MAX, uint16_t{65535}, uint64_t{UINT64_MAX}, size_t{42}),
            Streamed(0, -1, INT_MIN, LLONG_MAX, uint16_t{65535}, uint64_t{UINT64_MAX}, size_t{42}));
  EXPECT_EQ(Cat(true, false), Streamed(true, false));
  EXPECT_EQ(Cat(0.5, 1e-7, 123456789.0, 2.0f / 3, -0.0, 1e300), Streamed(0.5, 1e-7, 123456789.0, 2.0f / 3, -0.0, 1e300));
  EXPECT_EQ(Cat(kSeven), "7");
  EXPECT_EQ(Cat(std::chrono::milliseconds(1500)), Streamed(std::chrono::milliseconds(1500)));
  EXPECT_EQ(Cat(), "");
}

TEST(CatTest, NullCharPointerPrintsNothing) {
  const char* null = nullptr;
  EXPECT_EQ(Cat("a", null, "b"), "ab");
}

TEST(HexTest, TwoLowerCaseDigitsPerByteHighFirst) {
  EXPECT_EQ(HexOf(std::string_view("\x00\x0f\xab\xff", 4)), "000fabff");
  EXPECT_EQ(HexOf(""), "");
  char out[4];
  EXPECT_EQ(PutHex(out, "\x01\x23"), out + 4);  // where the next digits go
  EXPECT_EQ(std::string_view(out, 4), "0123");
  for (int b = 0; b < 256; ++b) {  // every byte, against printf's %02x
    char expected[3];
    std::snprintf(expected, sizeof expected, "%02x", b);
    EXPECT_EQ(HexOf(std::string(1, static_cast<char>(b))), expected) << b;
  }
}

TEST(PercentDecodeTest, DecodesEscapesAndKeepsMalformedOnes) {
  EXPECT_EQ(PercentDecode("50%25 spent: %C2%ABns%2Fweb%C2%BB"), "50% spent: «ns/web»");
  EXPECT_EQ(PercentDecode("a%2"), "a%2");
  EXPECT_EQ(PercentDecode("%zz%4"), "%zz%4");
  EXPECT_EQ(PercentDecode("a+b"), "a+b");
  EXPECT_EQ(PercentDecode("a+b%2Bc", /*plus_is_space=*/true), "a b+c");
}

TEST(PercentEncodeTest, EncodesWhatKeepRefusesInUpperCaseHexAndDecodesBack) {
  EXPECT_EQ(PercentEncode("", IsUriUnreserved), "");
  EXPECT_EQ(PercentEncode("a-Z_0.9~", IsUriUnreserved), "a-Z_0.9~");
  EXPECT_EQ(PercentEncode("50% «ns/web»\n", IsUriUnreserved), "50%25%20%C2%ABns%2Fweb%C2%BB%0A");
  const std::string every_byte = [] {
    std::string s;
    for (int b = 0; b < 256; ++b) s += static_cast<char>(b);
    return s;
  }();
  EXPECT_EQ(PercentDecode(PercentEncode(every_byte, IsUriUnreserved)), every_byte);
  // Another set: printable ASCII but '%' (gRPC's grpc-message).
  EXPECT_EQ(PercentEncode("a %\x7f", [](unsigned char c) { return c >= 0x20 && c <= 0x7e && c != '%'; }), "a %25%7F");
}

}  // namespace
}  // namespace meshplug
