// gRPC calls to the control plane over the agent's own HTTP/2 client (nghttp2 and Asio,
// which its data plane has anyway), so that no agent links gRPC's libraries: mapped into
// every agent, they made 3 MB of its resident memory, most of it the dynamic linker's
// tables (docs/benchmarks.md §4.2). The wire is gRPC's (PROTOCOL-HTTP2.md): messages with a
// 5-byte length prefix on one HTTP/2 stream, the status in the trailers.
#pragma once

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <google/protobuf/message_lite.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "agent/proxy/http2_upstream.h"

namespace meshplug::agent::xds {

// How a call reaches the control plane.
struct ControlPlaneCredentials {
  // TLS that verifies the control plane's certificate, which must name the host of the
  // address called; null: plaintext, for tests of the protocol alone.
  std::shared_ptr<boost::asio::ssl::context> tls;
  std::string bearer_token;  // sent as "authorization: Bearer <token>" when set
};

// The largest message a call accepts (a snapshot of a large mesh).
inline constexpr size_t kMaxGrpcMessageBytes = 64 * 1024 * 1024;

// One call; everything runs on the executor that started it.
class GrpcCall {
 public:
  using Clock = std::chrono::steady_clock;
  struct Options {
    std::chrono::milliseconds connect_timeout{5000};
    // The whole call's, sent as grpc-timeout (the caller ends the call at its deadline).
    std::optional<std::chrono::milliseconds> timeout;
    // HTTP/2 PING interval (0: none); one unanswered for `keepalive_timeout` ends the call
    // UNAVAILABLE.
    std::chrono::milliseconds keepalive{0};
    std::chrono::milliseconds keepalive_timeout{20000};
  };

  // Connects to `address` (host:port) on a connection of the call's own and starts
  // `method` ("/package.Service/Method"); nullptr with `status` when that failed
  // (UNAVAILABLE: the control plane could not be reached or verified).
  static boost::asio::awaitable<std::unique_ptr<GrpcCall>> Start(const std::string& address,
                                                                 const ControlPlaneCredentials& credentials,
                                                                 std::string_view method, const Options& options,
                                                                 absl::Status& status);
  ~GrpcCall();
  GrpcCall(const GrpcCall&) = delete;
  GrpcCall& operator=(const GrpcCall&) = delete;

  // Sends `message`; `last` half-closes the call. The call's status once it has ended.
  boost::asio::awaitable<absl::Status> Write(const google::protobuf::MessageLite& message, bool last);
  // The next message into `out`; false once the call has ended, status() then says how.
  boost::asio::awaitable<bool> Read(google::protobuf::MessageLite& out);
  // Ends the call (CANCELLED unless it had ended); a Read or Write waiting returns.
  void Cancel();
  bool ended() const { return ended_; }
  const absl::Status& status() const { return status_; }

 private:
  GrpcCall(const boost::asio::any_io_executor& executor, std::string address);
  // Ends the call with `status` (the first end counts); false, for Read to return.
  bool End(absl::Status status);
  // The response header: HTTP 200 with a gRPC content type, or the call's end.
  boost::asio::awaitable<bool> ReadHeader();

  const std::string address_;
  proxy::Http2UpstreamPool pool_;  // the call's one connection
  std::unique_ptr<proxy::Http2UpstreamStream> stream_;
  bool header_read_ = false;
  std::string received_;  // bytes of messages not taken yet
  size_t taken_ = 0;      // of received_
  bool ended_ = false;
  absl::Status status_;
};

// A call with one request and one response, run to its end on a thread of the caller's
// that it blocks for at most `timeout` (and the connect); DEADLINE_EXCEEDED after that.
absl::Status UnaryCall(const std::string& address, const ControlPlaneCredentials& credentials,
                       std::string_view method, const google::protobuf::MessageLite& request,
                       google::protobuf::MessageLite& response, std::chrono::milliseconds timeout);

}  // namespace meshplug::agent::xds
