#include "agent/proxy/http_message.h"

#include <algorithm>
#include <array>

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/rfc7230.hpp>
#include <iterator>

#include "common/strings.h"
#include "agent/routing/uri.h"
#include "plugins/api/http_fields.h"

namespace meshplug::agent::proxy {
namespace {

// Calls visit(token) for every token of every `name` field, in order, by one pass as in
// plugins/api/http_fields.h, until it returns true; whether it did. No copies: this runs
// for every request and response.
template <class Visit>
bool AnyToken(const http::fields& fields, http::field name, Visit visit) {
  for (const auto& f : fields) {
    if (f.name() != name) continue;
    for (std::string_view token : http::token_list(f.value())) {
      if (visit(token)) return true;
    }
  }
  return false;
}

bool ConnectionHas(const http::fields& fields, std::string_view token) {
  return AnyToken(fields, http::field::connection, [&](std::string_view t) { return boost::beast::iequals(t, token); });
}

// RFC 3986 host [":" port]: reg-name, IPv4 or bracketed IPv6 characters only.
// By table, not by a search per character: every request's Host comes here.
bool ValidAuthority(std::string_view authority) {
  static constexpr auto kAllowed = [] {
    std::array<bool, 256> allowed{};
    for (int c = 0; c < 256; ++c) {
      allowed[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   std::string_view("-._~!$&'()*+,;=%:[]").find(static_cast<char>(c)) != std::string_view::npos;
    }
    return allowed;
  }();
  return std::all_of(authority.begin(), authority.end(), [](unsigned char c) { return kAllowed[c]; });
}

}  // namespace

template <bool isRequest>
void RemoveConnectionOptions(http::header<isRequest>& header) {
  // The tokens are views into the Connection values, which stay valid (as does the pass
  // over the fields) while other fields go: a token naming Connection itself is acted on
  // last.
  bool names_connection = false;
  AnyToken(header, http::field::connection, [&](std::string_view name) {
    if (boost::beast::iequals(name, "connection")) {
      names_connection = true;
    } else if (!boost::beast::iequals(name, "host")) {
      header.erase(name);
    }
    return false;
  });
  if (names_connection) header.erase(http::field::connection);
}

template <bool isRequest>
void RemoveHopByHop(http::header<isRequest>& header) {
  plugins::EraseFields(header, [](const auto& f) { return HopByHop(f.name()); });
}

template void RemoveConnectionOptions<true>(http::header<true>&);
template void RemoveConnectionOptions<false>(http::header<false>&);
template void RemoveHopByHop<true>(http::header<true>&);
template void RemoveHopByHop<false>(http::header<false>&);

namespace {

// The comma-separated tokens of a field value, trimmed.
std::vector<std::string_view> ValueTokens(std::string_view value) {
  std::vector<std::string_view> out;
  for (const std::string_view piece : Split(value, ',')) {
    if (const std::string_view token = Trimmed(piece); !token.empty()) out.push_back(token);
  }
  return out;
}

}  // namespace

bool UpgradeAllowed(std::string_view protocols) {
  if (protocols.empty()) return false;  // every request without Upgrade asks this
  const std::vector<std::string_view> tokens = ValueTokens(protocols);
  return !tokens.empty() && std::none_of(tokens.begin(), tokens.end(), [](std::string_view t) {
    return boost::beast::iequals(t, "h2c");
  });
}

bool UpgradeOffered(std::string_view offered, std::string_view chosen) {
  const std::vector<std::string_view> tokens = ValueTokens(offered);
  return !chosen.empty() &&
         std::any_of(tokens.begin(), tokens.end(), [&](std::string_view t) { return boost::beast::iequals(t, chosen); });
}

std::string UpgradeProtocol(const http::request_header<>& request) {
  const std::string_view protocol = plugins::FieldValue(request, http::field::upgrade);
  if (request.version() < 11 || !UpgradeAllowed(protocol) || !ConnectionHas(request, "upgrade")) return "";
  return std::string(protocol);
}

std::optional<Rejection> CheckRequestFraming(const http::request_header<>& request) {
  if (plugins::FindField(request, http::field::transfer_encoding) == request.end()) return std::nullopt;
  if (request.version() < 11) return Rejection{400, "Transfer-Encoding in an HTTP/1.0 request"};
  if (plugins::FindField(request, http::field::content_length) != request.end()) {
    return Rejection{400, "both Content-Length and Transfer-Encoding"};
  }
  size_t codings = 0;
  std::string_view last;
  AnyToken(request, http::field::transfer_encoding, [&](std::string_view coding) {
    ++codings;
    last = coding;
    return false;
  });
  if (codings == 0 || !boost::beast::iequals(last, "chunked")) {
    return Rejection{400, "Transfer-Encoding not ending in chunked"};
  }
  if (codings > 1) return Rejection{501, "transfer codings other than chunked"};
  return std::nullopt;
}

bool ForwardableResponseFraming(const http::response_header<>& response) {
  // One Transfer-Encoding field naming chunked alone, or none.
  size_t fields = 0;
  size_t codings = 0;
  bool chunked = false;
  for (const auto& f : response) {
    if (f.name() != http::field::transfer_encoding) continue;
    ++fields;
    for (std::string_view coding : http::token_list(f.value())) {
      ++codings;
      chunked = boost::beast::iequals(coding, "chunked");
    }
  }
  return fields == 0 || (fields == 1 && codings == 1 && chunked);
}

std::optional<Rejection> CheckHost(const http::request_header<>& request) {
  size_t hosts = 0;
  std::string_view host;
  for (const auto& f : request) {
    if (f.name() != http::field::host) continue;
    if (hosts++ == 0) host = f.value();  // the first; a second is refused below
  }
  if (hosts > 1) return Rejection{400, "more than one Host field"};
  if (hosts == 0) {
    if (request.version() >= 11) return Rejection{400, "missing Host"};
    return std::nullopt;
  }
  if (!ValidAuthority(host)) return Rejection{400, "invalid Host"};
  return std::nullopt;
}

std::optional<Rejection> NormalizeTarget(http::request_header<>& request) {
  std::string_view target = request.target();
  std::string_view origin = target;
  std::string authority;
  constexpr std::string_view kScheme = "http://";
  if (target.size() >= kScheme.size() &&
      boost::beast::iequals(target.substr(0, kScheme.size()), kScheme)) {
    std::string_view rest = target.substr(kScheme.size());
    size_t slash = rest.find_first_of("/?");
    authority = std::string(rest.substr(0, slash));
    if (authority.empty() || authority.find('@') != std::string::npos ||
        !ValidAuthority(authority)) {
      return Rejection{400, "malformed absolute target"};
    }
    origin = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  } else if (target.empty() || target.front() != '/') {
    return Rejection{400, "request target must be a path or an http:// URL"};
  }
  std::string rooted;  // "http://host" and "http://host?q" mean the path "/"
  if (origin.empty() || origin.front() == '?') origin = rooted = Cat("/", origin);
  std::string target_storage;
  const std::optional<std::string_view> normalized = routing::NormalizeOriginForm(origin, target_storage);
  if (!normalized) return Rejection{400, "request path cannot be normalized"};
  if (!authority.empty()) request.set(http::field::host, authority);
  // Set only when changed: setting a field or the target reallocates it.
  if (const auto host = plugins::FindField(request, http::field::host); host != request.end()) {
    std::string host_storage;
    const std::string_view normalized_host = routing::NormalizeHost(host->value(), host_storage);
    if (normalized_host != host->value()) request.set(http::field::host, normalized_host);
  }
  if (*normalized != request.target()) request.target(*normalized);
  return std::nullopt;
}

std::optional<uint64_t> ContentLength(const http::fields& fields) {
  uint64_t n = 0;
  if (!ParseNumber(plugins::FieldValue(fields, http::field::content_length), n)) return std::nullopt;
  return n;
}

size_t FieldCount(const http::fields& fields) {
  return static_cast<size_t>(std::distance(fields.begin(), fields.end()));
}

template <bool isRequest>
bool KeepAlive(const http::header<isRequest>& header) {
  if (header.version() >= 11) return !ConnectionHas(header, "close");
  return ConnectionHas(header, "keep-alive") && !ConnectionHas(header, "close");
}

template <bool isRequest>
void SetKeepAlive(http::header<isRequest>& header, bool keep_alive) {
  if (!keep_alive) {
    header.set(http::field::connection, "close");
  } else if (header.version() < 11) {
    header.set(http::field::connection, "keep-alive");
  } else {
    header.erase(http::field::connection);
  }
}

template bool KeepAlive<true>(const http::header<true>&);
template bool KeepAlive<false>(const http::header<false>&);
template void SetKeepAlive<true>(http::header<true>&, bool);
template void SetKeepAlive<false>(http::header<false>&, bool);

}  // namespace meshplug::agent::proxy
