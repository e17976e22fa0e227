// String building for messages. Debian's Abseil is built with its own string_view (not
// std::string_view), so absl::StrCat does not take std::string_view; these helpers do.
#pragma once

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

}  // namespace meshplug
