#include "agent/routing/uri.h"

#include <algorithm>

#include "common/strings.h"

namespace meshplug::agent::routing {
namespace {

// RFC 3986 §5.2.4, on a path that starts with '/'.
std::string RemoveDotSegments(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  auto drop_last_segment = [&out] {
    size_t slash = out.rfind('/');
    out.erase(slash == std::string::npos ? 0 : slash);
  };
  while (!in.empty()) {
    if (in.starts_with("../")) {
      in.remove_prefix(3);
    } else if (in.starts_with("./")) {
      in.remove_prefix(2);
    } else if (in.starts_with("/./")) {
      in.remove_prefix(2);
    } else if (in == "/.") {
      in = "/";
    } else if (in.starts_with("/../")) {
      in.remove_prefix(3);
      drop_last_segment();
    } else if (in == "/..") {
      in = "/";
      drop_last_segment();
    } else if (in == "." || in == "..") {
      in = {};
    } else {
      size_t next = in.find('/', 1);
      if (next == std::string_view::npos) next = in.size();
      out.append(in.substr(0, next));
      in.remove_prefix(next);
    }
  }
  return out;
}

// "/a//b///c" → "/a/b/c": empty segments name nothing and servers disagree on them.
std::string MergeSlashes(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (char c : in) {
    if (c == '/' && !out.empty() && out.back() == '/') continue;
    out += c;
  }
  return out;
}

}  // namespace

std::string_view NormalizeHost(std::string_view host, std::string& storage) {
  // The port, if any, follows the last ':' outside an IPv6 literal's brackets.
  constexpr size_t kNone = std::string_view::npos;
  size_t colon = host.rfind(':');
  if (colon != kNone && host.find(']', colon) != kNone) colon = kNone;
  const size_t name_end = colon == kNone ? host.size() : colon;
  const bool trailing_dot = name_end > 1 && host[name_end - 1] == '.';  // "web.shop." is "web.shop"
  if (!trailing_dot && std::none_of(host.begin(), host.end(), [](char c) { return c >= 'A' && c <= 'Z'; })) {
    return host;
  }
  storage = Lower(host);
  if (trailing_dot) storage.erase(name_end - 1, 1);
  return storage;
}

std::optional<std::string_view> NormalizeOriginForm(std::string_view target, std::string& storage) {
  size_t question = target.find('?');
  std::string_view path = target.substr(0, question);
  std::string_view query =
      question == std::string_view::npos ? std::string_view() : target.substr(question);
  if (path.empty() || path.front() != '/') return std::nullopt;
  if (target.find('#') != std::string_view::npos) return std::nullopt;
  // Nothing to decode, no dot segment and no empty one possible: already normalized (the
  // common case).
  if (path.find_first_of("%.\\") == std::string_view::npos && path.find("//") == std::string_view::npos) {
    return target;
  }

  std::string decoded;
  decoded.reserve(path.size());
  for (size_t i = 0; i < path.size(); ++i) {
    char c = path[i];
    if (c == '\\') return std::nullopt;
    if (c != '%') {
      decoded += c;
      continue;
    }
    if (i + 2 >= path.size()) return std::nullopt;
    int hi = HexDigitValue(path[i + 1]), lo = HexDigitValue(path[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    auto byte = static_cast<unsigned char>(hi * 16 + lo);
    // An encoded separator would become a different path once some server decodes it.
    if (byte == '/' || byte == '\\' || byte == 0) return std::nullopt;
    if (IsUriUnreserved(byte)) {
      decoded += static_cast<char>(byte);
    } else {
      AppendPercentEncoded(decoded, byte);
    }
    i += 2;
  }
  storage = RemoveDotSegments(MergeSlashes(decoded));
  storage.append(query);
  return storage;
}

}  // namespace meshplug::agent::routing
