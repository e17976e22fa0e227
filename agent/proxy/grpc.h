// What the agent must know of gRPC (over HTTP/2,
// https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md), as a proxy and as the
// control plane's client: which messages are gRPC, how a deadline reads, the statuses an
// HTTP status stands for, and how a reply the agent makes becomes a gRPC error a client
// can read.
#pragma once

#include <boost/beast/http/message.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace meshplug::agent::proxy {

// Content-Type application/grpc, with or without a subtype ("+proto") or parameters.
bool IsGrpc(const boost::beast::http::fields& message);

// A grpc-timeout value: 1–8 digits and a unit (H, M, S, m, u, n); nullopt when malformed.
std::optional<std::chrono::milliseconds> GrpcTimeout(std::string_view value);

// The gRPC status a client takes from a response that is not gRPC, by its HTTP status
// (gRPC's http-grpc-status-mapping.md).
uint32_t GrpcStatusForHttp(unsigned http_status);
// The gRPC status a client takes from a stream reset with RST_STREAM `code`
// (PROTOCOL-HTTP2.md, "Errors").
uint32_t GrpcStatusForReset(uint32_t code);
// The gRPC status for an HTTP status the agent answers with: that mapping, except 413
// (RESOURCE_EXHAUSTED) and 504: the agent's 504 is always its own request timeout, so
// DEADLINE_EXCEEDED.
uint32_t GrpcStatusFor(unsigned http_status);

// grpc-message's percent-encoding of `text` (RFC 3986 style, printable ASCII but '%' kept).
std::string GrpcMessage(std::string_view text);

// A reply the agent (or a plugin) makes to a gRPC request with an error status becomes a
// gRPC error: HTTP 200, application/grpc, grpc-status and grpc-message (from `body`) in a
// header-only response (gRPC's Trailers-Only). A grpc-status a plugin set is kept; other
// fields are kept. Statuses below 400 are left alone.
void ToGrpcError(boost::beast::http::response_header<>& header, std::string& body);

}  // namespace meshplug::agent::proxy
