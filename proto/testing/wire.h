// Hand encoding of protobuf wire format for the wire-compatibility tests: messages are
// written from another project's field numbers and wire types, then compared with what
// the generated code reads and writes.
#pragma once

#include <cstdint>
#include <string>

#include <gtest/gtest.h>

namespace meshplug::wire {

constexpr int kVarint = 0;
constexpr int kLen = 2;

inline std::string Varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}

inline std::string Tag(int field, int wire_type) { return Varint((static_cast<uint64_t>(field) << 3) | wire_type); }
inline std::string Str(int field, const std::string& s) { return Tag(field, kLen) + Varint(s.size()) + s; }
inline std::string Msg(int field, const std::string& body) { return Str(field, body); }
inline std::string Int(int field, uint64_t v) { return Tag(field, kVarint) + Varint(v); }

// Parses `bytes` and checks that every field was known to the generated code (a field it
// does not know would survive only as an unknown field).
template <typename M>
M Parse(const std::string& bytes) {
  M m;
  EXPECT_TRUE(m.ParseFromString(bytes));
  EXPECT_TRUE(m.GetReflection()->GetUnknownFields(m).empty()) << m.DebugString();
  return m;
}

}  // namespace meshplug::wire
