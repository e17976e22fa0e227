#include "agent/xds/grpc_call.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/beast/http/message.hpp>

#include "agent/proxy/grpc.h"
#include "common/strings.h"
#include "net/tls.h"

namespace meshplug::agent::xds {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using std::chrono::milliseconds;

namespace {

// How long the control plane may leave a write waiting for window (it reads nothing)
// before the call is given up.
constexpr milliseconds kWriteStall{60000};
constexpr uint32_t kMaxHeaderBytes = 64 * 1024;
// A read waits for the next message without limit; this is only how often it looks again.
constexpr milliseconds kReadTurn{3600 * 1000};

absl::Status Unavailable(std::string_view what, const beast::error_code& ec) {
  return absl::UnavailableError(Cat(what, ": ", ec.message()));
}

// The status a response's trailers (or a Trailers-Only header) carry.
absl::Status StatusOf(const http::fields& fields) {
  const auto status = fields.find("grpc-status");
  if (status == fields.end()) return absl::UnknownError("the control plane's response carries no grpc-status");
  const std::string_view text = status->value();
  int code = 0;
  if (!ParseNumber(text, code) || code < 0 || code > 16) {
    return absl::UnknownError(Cat("the control plane's response carries grpc-status \"", text, "\""));
  }
  const auto message = fields.find("grpc-message");
  return absl::Status(static_cast<absl::StatusCode>(code),
                      message == fields.end() ? "" : proxy::GrpcMessageText(message->value()));
}

void PutLength(std::string& out, uint32_t n) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((n >> shift) & 0xff));
}

}  // namespace

GrpcCall::GrpcCall(const asio::any_io_executor& executor, std::string address)
    : address_(std::move(address)), pool_(executor) {}

GrpcCall::~GrpcCall() {
  stream_.reset();
  pool_.CloseAll();
}

asio::awaitable<std::unique_ptr<GrpcCall>> GrpcCall::Start(const std::string& address,
                                                           const ControlPlaneCredentials& credentials,
                                                           std::string_view method, const Options& options,
                                                           absl::Status& status) {
  const std::optional<HostAndPort> split = SplitHostPort(address);
  const std::optional<uint16_t> port = split ? ParsePort(split->port) : std::nullopt;
  if (!port || split->host.empty()) {
    status = absl::InvalidArgumentError(Cat("the control plane's address \"", address, "\" is not host:port"));
    co_return nullptr;
  }
  std::optional<net::TlsOrigination> tls;
  if (credentials.tls) tls = net::TlsOrigination{credentials.tls, "", nullptr, true, split->host};
  http::request_header<> request;
  request.method(http::verb::post);
  request.target(method);
  request.set(http::field::host, address);
  request.set(http::field::content_type, "application/grpc");
  request.set(http::field::user_agent, "meshplug-agent");
  if (!credentials.bearer_token.empty()) request.set(http::field::authorization, Cat("Bearer ", credentials.bearer_token));
  if (options.timeout) request.set("grpc-timeout", Cat(options.timeout->count(), "m"));

  std::unique_ptr<GrpcCall> call(new GrpcCall(co_await asio::this_coro::executor, address));
  beast::error_code ec;
  const bool given_up = false;
  call->stream_ = co_await call->pool_.Open(split->host, *port, options.connect_timeout, kWriteStall, kMaxHeaderBytes,
                                            tls ? &*tls : nullptr, request, /*has_body=*/true, given_up, ec);
  if (!call->stream_) {
    status = Unavailable(Cat("cannot connect to ", address), ec);
    co_return nullptr;
  }
  if (options.keepalive.count() > 0) call->stream_->KeepAlive(options.keepalive, options.keepalive_timeout);
  status = absl::OkStatus();
  co_return call;
}

bool GrpcCall::End(absl::Status status) {
  if (!ended_) {
    ended_ = true;
    status_ = std::move(status);
    if (stream_) stream_->Cancel();
  }
  return false;
}

void GrpcCall::Cancel() { End(absl::CancelledError("the call was cancelled")); }

asio::awaitable<absl::Status> GrpcCall::Write(const google::protobuf::MessageLite& message, bool last) {
  if (ended_) co_return status_.ok() ? absl::FailedPreconditionError("the call has ended") : status_;
  const size_t size = message.ByteSizeLong();
  if (size > kMaxGrpcMessageBytes) co_return absl::InvalidArgumentError(Cat("a message of ", size, " bytes"));
  std::string frame(1, '\0');  // not compressed
  PutLength(frame, static_cast<uint32_t>(size));
  message.AppendToString(&frame);
  beast::error_code ec;
  co_await stream_->Write(frame, last, kWriteStall, ec);
  if (ec && !ended_) End(Unavailable(Cat("sending to ", address_), ec));
  co_return ended_ ? status_ : absl::OkStatus();
}

asio::awaitable<bool> GrpcCall::ReadHeader() {
  http::response_header<> header;
  beast::error_code ec;
  co_await stream_->ReadHeader(header, Clock::time_point::max(), ec);
  if (ended_) co_return false;
  if (ec) co_return End(Unavailable(Cat("no response from ", address_), ec));
  header_read_ = true;
  if (header.result_int() != 200) {
    co_return End(absl::Status(static_cast<absl::StatusCode>(proxy::GrpcStatusFor(header.result_int())),
                               Cat(address_, " answered HTTP ", header.result_int())));
  }
  // Trailers-Only: the status in the header, no messages.
  if (header.find("grpc-status") != header.end()) co_return End(StatusOf(header));
  if (!proxy::IsGrpc(header)) {
    co_return End(absl::UnknownError(Cat(address_, " answered with content-type \"",
                                         header[http::field::content_type], "\", not gRPC")));
  }
  co_return true;
}

asio::awaitable<bool> GrpcCall::Read(google::protobuf::MessageLite& out) {
  if (ended_) co_return false;
  if (!header_read_ && !co_await ReadHeader()) co_return false;
  for (;;) {
    const std::string_view unread = std::string_view(received_).substr(taken_);
    if (unread.size() >= 5) {
      const auto byte = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(unread[i])); };
      const uint32_t size = byte(1) << 24 | byte(2) << 16 | byte(3) << 8 | byte(4);
      if (unread[0] != 0) {
        co_return End(absl::InternalError(Cat(address_, " sent a compressed message, though the call offered no compression")));
      }
      if (size > kMaxGrpcMessageBytes) {
        co_return End(absl::ResourceExhaustedError(
            Cat(address_, " sent a message of ", size, " bytes, over the limit of ", kMaxGrpcMessageBytes)));
      }
      if (unread.size() >= 5 + size) {
        if (!out.ParseFromArray(unread.data() + 5, static_cast<int>(size))) {
          co_return End(absl::InternalError(Cat(address_, " sent a message that does not parse as ", out.GetTypeName())));
        }
        taken_ += 5 + size;
        if (taken_ == received_.size()) received_.clear(), taken_ = 0;
        co_return true;
      }
    }
    std::string piece;
    beast::error_code ec;
    co_await stream_->ReadBody(piece, kReadTurn, ec);
    if (ended_) co_return false;
    if (ec == beast::error::timeout) continue;
    if (ec) co_return End(Unavailable(Cat("the call to ", address_, " broke"), ec));
    if (piece.empty()) {  // the response's end
      if (taken_ != received_.size()) co_return End(absl::InternalError(Cat(address_, " ended the call inside a message")));
      co_return End(StatusOf(stream_->trailers()));
    }
    if (taken_ > 0) received_.erase(0, taken_), taken_ = 0;
    received_ += piece;
  }
}

absl::Status UnaryCall(const std::string& address, const ControlPlaneCredentials& credentials, std::string_view method,
                       const google::protobuf::MessageLite& request, google::protobuf::MessageLite& response,
                       milliseconds timeout) {
  asio::io_context io;
  struct Outcome {
    bool done = false;
    absl::Status status;
  };
  auto outcome = std::make_shared<Outcome>();
  std::shared_ptr<GrpcCall> running;  // for the deadline to cancel
  GrpcCall::Options options;
  options.connect_timeout = timeout;
  options.timeout = timeout;
  asio::co_spawn(
      io,
      [&, outcome]() -> asio::awaitable<void> {
        absl::Status status;
        std::shared_ptr<GrpcCall> call = co_await GrpcCall::Start(address, credentials, method, options, status);
        if (call) {
          running = call;
          status = co_await call->Write(request, /*last=*/true);
          const bool got = status.ok() && co_await call->Read(response);
          // A unary call's one message, then its end: the status.
          const bool more = got && co_await call->Read(response);
          if (status.ok()) status = more ? absl::InternalError(Cat(address, " sent more than one response"))
                                         : call->status();
          if (status.ok() && !got) status = absl::InternalError(Cat(address, " sent no response"));
          running.reset();
        }
        outcome->status = std::move(status);
        outcome->done = true;
      },
      asio::detached);
  const auto deadline = GrpcCall::Clock::now() + timeout;
  while (!outcome->done && io.run_one_until(deadline) > 0) {
  }
  if (!outcome->done) {
    if (running) running->Cancel();
    // The call's end, after the cancel: nothing of it outlives this function's variables.
    const auto bound = GrpcCall::Clock::now() + std::chrono::seconds(1);
    while (!outcome->done && io.run_one_until(bound) > 0) {
    }
    return absl::DeadlineExceededError(Cat("no answer from ", address, " within ", timeout.count(), " ms"));
  }
  return outcome->status;
}

}  // namespace meshplug::agent::xds
