// String building for messages. Debian's Abseil is built with its own string_view (not
// std::string_view), so absl::StrCat does not take std::string_view; these helpers do.
#pragma once

#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace meshplug {

namespace strings_internal {

// Appends what `out << v` prints for the types Cat is given, without a stream for the
// common ones: Cat runs on the data path (pool keys, trace ids), where constructing an
// ostringstream (its locale) cost more than the rest of the work. Differences: a null
// char pointer adds nothing (a stream would drop the rest), long double prints as double.
template <typename T>
void Append(std::string& out, const T& v) {
  if constexpr (std::is_same_v<T, char> || std::is_same_v<T, signed char> || std::is_same_v<T, unsigned char>) {
    out += static_cast<char>(v);
  } else if constexpr (std::is_same_v<T, bool>) {
    out += v ? '1' : '0';
  } else if constexpr (std::is_pointer_v<T> && std::is_convertible_v<T, const char*>) {
    if (v != nullptr) out += v;
  } else if constexpr (std::is_convertible_v<const T&, std::string_view>) {
    out += std::string_view(v);
  } else if constexpr (std::is_integral_v<T>) {
    char buf[24];
    out.append(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
  } else if constexpr (std::is_floating_point_v<T>) {
    char buf[32];  // a stream's default: %g with 6 significant digits
    const int n = std::snprintf(buf, sizeof buf, "%g", static_cast<double>(v));
    out.append(buf, static_cast<size_t>(n));
  } else {
    std::ostringstream s;
    s << v;
    out += s.str();
  }
}

}  // namespace strings_internal

template <typename... Args>
std::string Cat(const Args&... args) {
  std::string out;
  (strings_internal::Append(out, args), ...);
  return out;
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

// `s` as a JSON string literal, quotes included. Bytes that are not valid UTF-8 (a
// garbage file, a hostile header) become U+FFFD, so the output is always valid JSON.
std::string JsonQuote(std::string_view s);

// The length of the longest prefix of `s` that is valid UTF-8 (RFC 3629): s.size() when
// all of it is. Text that ends up in protobuf string fields must be UTF-8.
size_t ValidUtf8Prefix(std::string_view s);

// ASCII letters and digits: what the RFCs' ALPHA and DIGIT mean. Not std::isalnum,
// which follows the locale.
constexpr bool IsAsciiAlnum(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// RFC 3986's unreserved characters (ALPHA, DIGIT, "-", ".", "_", "~"): never
// percent-encoded.
constexpr bool IsUriUnreserved(unsigned char c) { return IsAsciiAlnum(c) || c == '-' || c == '.' || c == '_' || c == '~'; }

// Appends `byte` as "%XX" (upper-case hex, as RFC 3986 recommends).
inline void AppendPercentEncoded(std::string& out, unsigned char byte) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  out += '%';
  out += kHex[byte >> 4];
  out += kHex[byte & 15];
}

// `text` with each byte that `keep` refuses written as "%XX".
template <typename Keep>
std::string PercentEncode(std::string_view text, Keep keep) {
  std::string out;
  out.reserve(text.size());
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (keep(c)) {
      out += ch;
    } else {
      AppendPercentEncoded(out, c);
    }
  }
  return out;
}

// The 1-based line of byte `offset` of `text`.
size_t LineAt(std::string_view text, size_t offset);

// `s` when it has at most `max` bytes, else its first `max` bytes and a note of how
// many more there were ("... (N more bytes)").
std::string Truncated(std::string_view s, size_t max);

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

// The pieces of `text` between `sep`s (empty pieces kept; "" gives one empty piece);
// at most `max_pieces`, the last holding the rest.
std::vector<std::string_view> Split(std::string_view text, char sep, size_t max_pieces = SIZE_MAX);

// `s` without leading and trailing spaces and tabs.
std::string_view Trimmed(std::string_view s);

// RFC 9110's token (a header field name, a method): letters, digits and !#$%&'*+-.^_`|~.
bool IsHttpToken(std::string_view s);

// Whether a listen host means every address: "0.0.0.0", "::" or "[::]".
inline bool IsAnyAddress(std::string_view host) { return host == "0.0.0.0" || host == "::" || host == "[::]"; }
// Whether a host names this machine's loopback: 127.x.y.z, "::1", "[::1]" or "localhost".
inline bool IsLoopback(std::string_view host) {
  return host.starts_with("127.") || host == "::1" || host == "[::1]" || host == "localhost";
}

// A TCP/UDP port, 1-65535, as a whole decimal number.
std::optional<uint16_t> ParsePort(std::string_view s);

// "host:port" split at its last colon, an IPv6 host's brackets removed; nullopt without
// a colon. Neither part is checked.
struct HostAndPort {
  std::string host;
  std::string_view port;
};
std::optional<HostAndPort> SplitHostPort(std::string_view host_port);

// "key=value,key2=value2" (empty items skipped); nullopt when an item is not key=value,
// which `*bad` then holds.
std::optional<std::map<std::string, std::string>> ParseLabels(std::string_view text, std::string* bad);

// The value of a hex digit (either case); -1 for another character.
int HexDigitValue(char c);
// `s` with each %XX decoded (a malformed one kept as it is); with `plus_is_space`, '+' is
// a space (HTML form encoding).
std::string PercentDecode(std::string_view s, bool plus_is_space = false);

// Lower-case hex of `bytes`.
std::string HexOf(std::string_view bytes);
// HexOf written at `out` (two digits a byte, no allocation); the end of what it wrote.
char* PutHex(char* out, std::string_view bytes);

// `t` in UTC as RFC 3339, with seconds or milliseconds.
std::string Rfc3339(std::chrono::system_clock::time_point t, bool millis = false);
// Now, UTC, as RFC 3339 with seconds ("2026-11-29T05:53:42Z").
std::string NowRfc3339();
// The same with milliseconds ("2026-11-29T05:53:42.123Z"), for log and access lines.
std::string NowRfc3339Millis();

}  // namespace meshplug
