// Checks and rewrites of HTTP/1.1 message headers that a proxy must make between hops.
#pragma once

#include <boost/beast/http/message.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/proxy/hop_by_hop.h"

namespace meshplug::agent::proxy {

namespace http = boost::beast::http;

// A request the agent refuses before running any chain: status and reason for the client.
struct Rejection {
  unsigned status = 400;
  std::string reason;
};

// Removes the fields a message's Connection fields name as meant for this hop only (RFC
// 9110 §7.6.1), as the message arrives and before any plugin sees it, so a sender cannot
// name a field a plugin adds later. Host is never removed: an HTTP/1.1 request cannot go
// on without it, and no sender may name it (it is meant for every recipient).
template <bool isRequest>
void RemoveConnectionOptions(http::header<isRequest>& header);

// Removes the HopByHop fields from a message about to be sent.
template <bool isRequest>
void RemoveHopByHop(http::header<isRequest>& header);

// Why a request's framing cannot be forwarded (request smuggling defence), or nullopt.
// Beast already refuses conflicting Content-Lengths. 400: Transfer-Encoding in HTTP/1.0,
// together with Content-Length, or not ending in chunked (RFC 9112 §6.3: the length
// cannot be determined). 501: codings before chunked (RFC 9112 §6.1: not understood);
// only exactly "chunked" is forwarded.
std::optional<Rejection> CheckRequestFraming(const http::request_header<>& request);

// The protocol an HTTP/1.1 request asks to switch to (`Connection: upgrade` and
// `Upgrade: X`, e.g. websocket), or "" for none or one the agent does not relay.
std::string UpgradeProtocol(const http::request_header<>& request);
// Whether the agent relays a switch to `protocols` (an Upgrade value): not empty, and
// never h2c — an upgrade to HTTP/2 in cleartext would take later requests past the chains.
bool UpgradeAllowed(std::string_view protocols);
// Whether `chosen` (a 101's Upgrade) is one of the `offered` protocols.
bool UpgradeOffered(std::string_view offered, std::string_view chosen);

// Whether a response's body can be re-framed: no Transfer-Encoding, or exactly one field
// "chunked". Any other coding would be lost when the agent re-frames (→ 502).
bool ForwardableResponseFraming(const http::response_header<>& response);

// RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host, any request with more than
// one Host, or a Host value that is not "host[:port]".
std::optional<Rejection> CheckHost(const http::request_header<>& request);

// Makes the target the normalized origin form that routing matches, plugins see and the
// upstream receives: an absolute-form target ("http://host:port/path?q", explicit proxy
// use) has its authority moved into Host; the path is normalized
// (routing::NormalizeOriginForm: "%2e" decoded, slashes merged, dot segments removed) and
// so is Host (routing::NormalizeHost: lower case, no trailing dot). 400 for what cannot be normalized (encoded '/' or
// '\', a raw '\', malformed percent-encodings) and for targets in authority form (CONNECT)
// or asterisk form ("*"), which the agent does not serve.
std::optional<Rejection> NormalizeTarget(http::request_header<>& request);

size_t FieldCount(const http::fields& fields);

// The Content-Length of a message's fields when it has a valid one.
std::optional<uint64_t> ContentLength(const http::fields& fields);

// Whether the sender of `header` keeps the connection open after this message (every
// Connection field counts).
template <bool isRequest>
bool KeepAlive(const http::header<isRequest>& header);

// Sets the Connection field of an outgoing header (after RemoveHopByHop).
template <bool isRequest>
void SetKeepAlive(http::header<isRequest>& header, bool keep_alive);

}  // namespace meshplug::agent::proxy
