// Checks and rewrites of HTTP/1.1 message headers that a proxy must make between hops.
#pragma once

#include <boost/beast/http/message.hpp>
#include <string>
#include <string_view>

namespace meshplug::agent {

namespace http = boost::beast::http;

// Removes the hop-by-hop fields (RFC 9110 §7.6.1): Connection and every field it names,
// Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade. Content-Length is
// kept; the sender re-frames the body.
template <bool isRequest>
void RemoveHopByHop(http::header<isRequest>& header);

// Why a request's framing is unsafe to forward (request smuggling defence), or empty.
// Beast already refuses Content-Length with chunked and conflicting lengths; this also
// refuses a Transfer-Encoding whose last coding is not chunked, and Transfer-Encoding in
// an HTTP/1.0 request.
std::string UnsafeFraming(const http::request_header<>& request);

// An absolute-form target ("http://host:port/path?q", explicit proxy use) becomes the
// origin form with the authority moved into Host. False when the target is absolute but
// malformed.
bool NormalizeTarget(http::request_header<>& request);

size_t FieldCount(const http::fields& fields);

// Whether the sender of `header` keeps the connection open after this message.
template <bool isRequest>
bool KeepAlive(const http::header<isRequest>& header);

// Sets the Connection field of an outgoing header (after RemoveHopByHop).
template <bool isRequest>
void SetKeepAlive(http::header<isRequest>& header, bool keep_alive);

}  // namespace meshplug::agent
