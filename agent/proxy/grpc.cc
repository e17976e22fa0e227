#include "agent/proxy/grpc.h"

#include <nghttp2/nghttp2.h>

#include <boost/beast/core/string.hpp>

#include "common/strings.h"
#include "plugins/api/http_fields.h"

namespace meshplug::agent::proxy {

namespace http = boost::beast::http;

bool IsGrpc(const http::fields& message) {
  const std::string_view type = plugins::FieldValue(message, http::field::content_type);
  constexpr std::string_view kGrpc = "application/grpc";
  if (type.size() < kGrpc.size() || !boost::beast::iequals(type.substr(0, kGrpc.size()), kGrpc)) return false;
  return type.size() == kGrpc.size() || type[kGrpc.size()] == '+' || type[kGrpc.size()] == ';';
}

std::optional<std::chrono::milliseconds> GrpcTimeout(std::string_view value) {
  if (value.size() < 2 || value.size() > 9) return std::nullopt;
  int64_t n = 0;
  for (char c : value.substr(0, value.size() - 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
  }
  using namespace std::chrono;
  switch (value.back()) {
    case 'H': return duration_cast<milliseconds>(hours(n));
    case 'M': return duration_cast<milliseconds>(minutes(n));
    case 'S': return duration_cast<milliseconds>(seconds(n));
    case 'm': return milliseconds(n);
    // Below a millisecond rounds up: a deadline must not become "none".
    case 'u': return ceil<milliseconds>(microseconds(n));
    case 'n': return ceil<milliseconds>(nanoseconds(n));
    default: return std::nullopt;
  }
}

uint32_t GrpcStatusForHttp(unsigned http_status) {
  switch (http_status) {
    case 400: return 13;  // INTERNAL
    case 401: return 16;  // UNAUTHENTICATED
    case 403: return 7;   // PERMISSION_DENIED
    case 404: return 12;  // UNIMPLEMENTED
    case 429:
    case 502:
    case 503:
    case 504: return 14;  // UNAVAILABLE
    default: return 2;    // UNKNOWN
  }
}

uint32_t GrpcStatusFor(unsigned http_status) {
  switch (http_status) {
    case 413: return 8;  // RESOURCE_EXHAUSTED
    case 504: return 4;  // DEADLINE_EXCEEDED
    default: return GrpcStatusForHttp(http_status);
  }
}

uint32_t GrpcStatusForReset(uint32_t code) {
  switch (code) {
    case NGHTTP2_REFUSED_STREAM: return 14;       // UNAVAILABLE
    case NGHTTP2_CANCEL: return 1;                // CANCELLED
    case NGHTTP2_ENHANCE_YOUR_CALM: return 8;     // RESOURCE_EXHAUSTED
    case NGHTTP2_INADEQUATE_SECURITY: return 7;   // PERMISSION_DENIED
    default: return 13;                           // INTERNAL
  }
}

std::string GrpcMessage(std::string_view text) {
  return PercentEncode(text, [](unsigned char c) { return c >= 0x20 && c <= 0x7e && c != '%'; });
}

void ToGrpcError(http::response_header<>& header, std::string& body) {
  const unsigned status = header.result_int();
  if (status < 400) return;
  if (header["grpc-status"].empty()) header.set("grpc-status", std::to_string(GrpcStatusFor(status)));
  if (header["grpc-message"].empty()) {
    std::string_view text = body;
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
    header.set("grpc-message", GrpcMessage(text.empty() ? header.reason() : text));
  }
  header.result(http::status::ok);
  header.set(http::field::content_type, "application/grpc");
  header.erase(http::field::content_length);
  body.clear();
}

}  // namespace meshplug::agent::proxy
