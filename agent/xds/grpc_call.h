// gRPC calls to the control plane over the agent's own HTTP/2 client (nghttp2 and Asio,
// which its data plane has anyway), so that no agent links gRPC's libraries: their
// pages made 3 MB of every agent's resident memory (docs/benchmarks.md §4.2, 2026-12-07).
// The wire is gRPC's (PROTOCOL-HTTP2.md): messages with a 5-byte length prefix on one
// HTTP/2 stream, the status in the trailers.
#pragma once

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <google/protobuf/message_lite.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "agent/proxy/http2_upstream.h"
#include "agent/xds/control_plane_credentials.h"

namespace meshplug::agent::xds {

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
    // HTTP/2 PING interval (0: none); nothing heard for `keepalive_timeout` after one ends
    // the call UNAVAILABLE.
    std::chrono::milliseconds keepalive{0};
    std::chrono::milliseconds keepalive_timeout{20000};
    // Once *given_up is true while Start connects, nothing is sent and Start fails
    // (CANCELLED); it must outlive Start.
    const bool* given_up = nullptr;
  };

  // Connects to `address` (host:port) on a connection of the call's own and starts
  // `method` ("/package.Service/Method"); nullptr with `status` when that failed
  // (UNAVAILABLE: the control plane could not be reached or verified). The arguments are
  // used until it returns.
  static boost::asio::awaitable<std::unique_ptr<GrpcCall>> Start(const std::string& address,
                                                                 const ControlPlaneCredentials& credentials,
                                                                 std::string_view method, const Options& options,
                                                                 absl::Status& status);
  ~GrpcCall();
  GrpcCall(const GrpcCall&) = delete;
  GrpcCall& operator=(const GrpcCall&) = delete;

  // Sends `message`; `last` half-closes the call. An error when it could not be sent; the
  // call's status then comes from Read (the control plane's, when it ended the call).
  boost::asio::awaitable<absl::Status> Write(const google::protobuf::MessageLite& message, bool last);
  // The next message into `out`; false once the call has ended, status() then says how.
  boost::asio::awaitable<bool> Read(google::protobuf::MessageLite& out);
  // Ends the call (CANCELLED unless it had ended); a Read or Write waiting returns.
  void Cancel();
  bool ended() const { return ended_; }
  const absl::Status& status() const { return status_; }

 private:
  GrpcCall(const boost::asio::any_io_executor& executor, std::string address, const Options& options);
  // Ends the call with `status` (the first end counts); false, for Read to return.
  bool End(absl::Status status);
  // The response header: HTTP 200 with a gRPC content type, or the call's end.
  boost::asio::awaitable<bool> ReadHeader();
  // Why the stream closed under a read or write that failed with `ec`.
  absl::Status Broken(const boost::beast::error_code& ec) const;

  const std::string address_;
  const std::chrono::milliseconds keepalive_timeout_;  // for the message when it ends the call
  // The call's one connection, closed with the call. (A pool because it is how the
  // proxy's HTTP/2 client connects; it never holds another connection.)
  proxy::Http2UpstreamPool pool_;
  std::unique_ptr<proxy::Http2UpstreamStream> stream_;
  bool header_read_ = false;
  std::string received_;  // bytes of messages not taken yet
  size_t taken_ = 0;      // of received_
  bool ended_ = false;
  absl::Status status_;
};

// A call with one request and one response, run on `io` (which nothing else runs
// meanwhile) by the calling thread for `timeout`, connecting included: DEADLINE_EXCEEDED
// after that, or UNAVAILABLE when it was still connecting (nothing was sent). A call that
// completed at the deadline counts. Past the deadline the call is cancelled and its end
// awaited a few seconds at most; what it still does after that touches only its own state.
absl::Status UnaryCall(boost::asio::io_context& io, const std::string& address,
                       const ControlPlaneCredentials& credentials, std::string_view method,
                       const google::protobuf::MessageLite& request, google::protobuf::MessageLite& response,
                       std::chrono::milliseconds timeout);

}  // namespace meshplug::agent::xds
