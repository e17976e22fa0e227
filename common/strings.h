// String building for messages. Debian's Abseil is built with its own string_view (not
// std::string_view), so absl::StrCat does not take std::string_view; these helpers do.
#pragma once

#include <charconv>
#include <cstdio>
#include <sstream>
#include <string>
#include <string_view>

namespace meshplug {

template <typename... Args>
std::string Cat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

template <typename Range>
std::string Join(const Range& items, std::string_view sep) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += sep;
    out += item;
  }
  return out;
}

// `s` as a JSON string literal, quotes included.
inline std::string JsonQuote(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
          out += escaped;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

// ASCII lower case.
inline std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// The whole of `s` as a decimal number.
template <typename Int>
bool ParseNumber(std::string_view s, Int& out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size() && !s.empty();
}

// Now, UTC, as RFC 3339 with seconds ("2026-11-29T05:53:42Z").
std::string NowRfc3339();
// The same with milliseconds ("2026-11-29T05:53:42.123Z"), for log and access lines.
std::string NowRfc3339Millis();

}  // namespace meshplug
