#include "agent/http_message.h"

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/rfc7230.hpp>
#include <iterator>
#include <vector>

namespace meshplug::agent {

template <bool isRequest>
void RemoveHopByHop(http::header<isRequest>& header) {
  std::vector<std::string> named;
  for (std::string_view token : http::token_list(header[http::field::connection])) {
    named.emplace_back(token);
  }
  for (const std::string& name : named) header.erase(name);
  for (http::field f : {http::field::connection, http::field::keep_alive,
                        http::field::proxy_connection, http::field::te, http::field::trailer,
                        http::field::transfer_encoding, http::field::upgrade}) {
    header.erase(f);
  }
}

template void RemoveHopByHop<true>(http::header<true>&);
template void RemoveHopByHop<false>(http::header<false>&);

std::string UnsafeFraming(const http::request_header<>& request) {
  auto te = request.find(http::field::transfer_encoding);
  if (te == request.end()) return {};
  if (request.version() < 11) return "Transfer-Encoding in an HTTP/1.0 request";
  if (request.count(http::field::transfer_encoding) > 1) return "repeated Transfer-Encoding";
  http::token_list codings(te->value());
  std::string_view last;
  for (std::string_view coding : codings) last = coding;
  if (!boost::beast::iequals(last, "chunked")) return "Transfer-Encoding not ending in chunked";
  if (request.count(http::field::content_length) > 0) {
    return "both Content-Length and Transfer-Encoding";
  }
  return {};
}

bool NormalizeTarget(http::request_header<>& request) {
  std::string_view target = request.target();
  constexpr std::string_view kScheme = "http://";
  if (target.size() < kScheme.size() ||
      !boost::beast::iequals(target.substr(0, kScheme.size()), kScheme)) {
    return true;
  }
  std::string_view rest = target.substr(kScheme.size());
  size_t slash = rest.find_first_of("/?");
  std::string authority(rest.substr(0, slash));
  if (authority.empty() || authority.find('@') != std::string::npos) return false;
  std::string path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (path.front() == '?') path.insert(0, "/");
  request.set(http::field::host, authority);
  request.target(path);
  return true;
}

size_t FieldCount(const http::fields& fields) {
  return static_cast<size_t>(std::distance(fields.begin(), fields.end()));
}

}  // namespace meshplug::agent

namespace meshplug::agent {
namespace {

bool ConnectionHas(std::string_view connection, std::string_view token) {
  for (std::string_view t : http::token_list(connection)) {
    if (boost::beast::iequals(t, token)) return true;
  }
  return false;
}

}  // namespace

template <bool isRequest>
bool KeepAlive(const http::header<isRequest>& header) {
  std::string_view connection = header[http::field::connection];
  if (header.version() >= 11) return !ConnectionHas(connection, "close");
  return ConnectionHas(connection, "keep-alive");
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

}  // namespace meshplug::agent
