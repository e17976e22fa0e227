// Small string helpers for the built-in modules (Cat and JsonQuote come from common/).
#pragma once

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/strings.h"

namespace meshplug::builtin {

using meshplug::Cat;
using meshplug::JsonQuote;

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

}  // namespace meshplug::builtin
