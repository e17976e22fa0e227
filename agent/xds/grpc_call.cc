#include "agent/xds/grpc_call.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/endian/conversion.hpp>

#include "agent/proxy/grpc.h"
#include "agent/proxy/http2_common.h"
#include "agent/xds/server_list.h"
#include "common/strings.h"
#include "common/xds_types.h"
#include "net/tls.h"

namespace meshplug::agent::xds {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using std::chrono::milliseconds;

namespace {

// How long one write may wait for the control plane to take it (flow-control window)
// before the call is given up; the connection's idle limit too, which a call never reaches.
constexpr milliseconds kWriteStall{60000};
// How long UnaryCall awaits a call's end after cancelling it at the deadline.
constexpr std::chrono::seconds kCancelGrace{5};
constexpr uint32_t kMaxHeaderBytes = 64 * 1024;
// A call's receive window, as large as its connection's: a snapshot of a few MB arrives
// in one round trip rather than one per 256 KB (gRPC's client grew its window by probing).
constexpr int32_t kCallWindow = proxy::kHttp2ConnectionWindow;
// A read waits for the next message without limit; this is only how often it looks again.
constexpr milliseconds kReadTurn{3600 * 1000};
// Past this, the buffer of a message read is freed rather than kept for the next one.
constexpr size_t kKeptBufferBytes = 1024 * 1024;

// The status a response's trailers (or a Trailers-Only header) carry.
absl::Status StatusOf(const http::fields& fields, const std::string& address) {
  const auto status = fields.find("grpc-status");
  if (status == fields.end()) return absl::UnknownError(Cat(address, " ended the call without a grpc-status"));
  const std::string_view text = status->value();
  int code = 0;
  if (!ParseNumber(text, code) || code < 0 || code > 16) {
    return absl::UnknownError(Cat(address, " ended the call with grpc-status \"", text, "\""));
  }
  const auto message = fields.find("grpc-message");
  return absl::Status(static_cast<absl::StatusCode>(code), message == fields.end() ? "" : PercentDecode(message->value()));
}

}  // namespace

GrpcCall::GrpcCall(const asio::any_io_executor& executor, std::string address, const Options& options)
    : address_(std::move(address)), keepalive_timeout_(options.keepalive_timeout), pool_(executor) {}

GrpcCall::~GrpcCall() {
  stream_.reset();
  pool_.CloseAll();
}

asio::awaitable<std::unique_ptr<GrpcCall>> GrpcCall::Start(const std::string& address,
                                                           const ControlPlaneCredentials& credentials,
                                                           std::string_view method, const Options& options,
                                                           absl::Status& status) {
  const absl::StatusOr<std::pair<std::string, uint16_t>> endpoint = ReplicaEndpoint(address);
  if (!endpoint.ok()) {
    status = endpoint.status();
    co_return nullptr;
  }
  const auto& [host, port] = *endpoint;
  if (!credentials.tls && !credentials.bearer_token.empty()) {
    status = absl::InvalidArgumentError("a bearer token is sent only over TLS");
    co_return nullptr;
  }
  std::optional<net::TlsOrigination> tls;
  // (The pool offers h2 over TLS itself.)
  if (credentials.tls) tls = net::TlsOrigination{.context = credentials.tls, .server_name = host};
  http::request_header<> request;
  request.method(http::verb::post);
  request.target(method);
  request.set(http::field::host, address);
  request.set(http::field::content_type, "application/grpc");
  request.set(http::field::user_agent, xds_types::kAgentUserAgentName);
  if (!credentials.bearer_token.empty()) request.set(http::field::authorization, Cat("Bearer ", credentials.bearer_token));
  if (options.timeout) request.set("grpc-timeout", Cat(options.timeout->count(), "m"));

  std::unique_ptr<GrpcCall> call(new GrpcCall(co_await asio::this_coro::executor, address, options));
  beast::error_code ec;
  static constexpr bool kNever = false;
  const bool& given_up = options.given_up ? *options.given_up : kNever;
  call->stream_ = co_await call->pool_.Open(host, port, options.connect_timeout, kWriteStall, kMaxHeaderBytes,
                                            tls ? &*tls : nullptr, request, /*has_body=*/true, given_up, ec);
  if (!call->stream_) {
    status = ec == asio::error::operation_aborted && given_up
                 ? absl::CancelledError(Cat("the call to ", address, " was given up while connecting"))
                 : absl::UnavailableError(Cat("cannot connect to ", address, ": ", ec.message()));
    co_return nullptr;
  }
  call->stream_->SetReceiveWindow(kCallWindow);
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

absl::Status GrpcCall::Broken(const beast::error_code& ec) const {
  if (stream_->keepalive_failed()) {
    return absl::UnavailableError(
        Cat(address_, " did not answer a keepalive PING within ", keepalive_timeout_.count(), " ms"));
  }
  if (const std::optional<uint32_t> code = stream_->reset_code()) {
    return absl::Status(static_cast<absl::StatusCode>(proxy::GrpcStatusForReset(*code)), Cat("the call to ", address_, " was reset (HTTP/2 error ", *code, ")"));
  }
  return absl::UnavailableError(Cat("the connection to ", address_, " closed: ", ec.message()));
}

asio::awaitable<absl::Status> GrpcCall::Write(const google::protobuf::MessageLite& message, bool last) {
  if (ended_) co_return status_.ok() ? absl::FailedPreconditionError("the call has ended") : status_;
  const size_t size = message.ByteSizeLong();
  if (size > kMaxGrpcMessageBytes) {
    End(absl::InvalidArgumentError(Cat("a message of ", size, " bytes, over the limit of ", kMaxGrpcMessageBytes)));
    co_return status_;
  }
  std::string frame(5, '\0');  // not compressed, then the length
  boost::endian::store_big_u32(reinterpret_cast<unsigned char*>(&frame[1]), static_cast<uint32_t>(size));
  message.AppendToString(&frame);
  beast::error_code ec;
  co_await stream_->Write(frame, last, kWriteStall, ec);
  if (ended_) co_return status_.ok() ? absl::FailedPreconditionError("the call ended during the write") : status_;
  if (ec == beast::error::timeout) {
    End(absl::UnavailableError(Cat("a write to ", address_, " did not drain within ", kWriteStall.count(), " ms")));
    co_return status_;
  }
  // The stream closed: Read takes the call's status (the trailers came first, or the reset).
  if (ec) co_return Broken(ec);
  co_return absl::OkStatus();
}

asio::awaitable<bool> GrpcCall::ReadHeader() {
  http::response_header<> header;
  beast::error_code ec;
  co_await stream_->ReadHeader(header, Clock::time_point::max(), ec);
  if (ended_) co_return false;
  if (ec) co_return End(Broken(ec));
  header_read_ = true;
  // Trailers-Only: the status in the header, no messages (whatever the HTTP status).
  if (header.find("grpc-status") != header.end()) co_return End(StatusOf(header, address_));
  if (header.result_int() != 200) {
    co_return End(absl::Status(static_cast<absl::StatusCode>(proxy::GrpcStatusForHttp(header.result_int())),
                               Cat(address_, " answered HTTP ", header.result_int())));
  }
  if (!proxy::IsGrpc(header)) {
    co_return End(absl::UnknownError(Cat(address_, " answered with content-type \"",
                                         header[http::field::content_type], "\", not gRPC")));
  }
  co_return true;
}

asio::awaitable<bool> GrpcCall::Read(google::protobuf::MessageLite& out) {
  if (ended_) co_return false;
  // No co_await inside a condition: GCC 12 miscompiles it (see agent/proxy/tcp_proxy.cc).
  if (!header_read_) {
    const bool started = co_await ReadHeader();
    if (!started) co_return false;
  }
  std::string piece;  // kept across turns: its buffer is reused
  for (;;) {
    const std::string_view unread = std::string_view(received_).substr(taken_);
    size_t whole = 0;  // the next message's bytes with its prefix, once the prefix is in
    if (unread.size() >= 5) {
      const uint32_t size = boost::endian::load_big_u32(reinterpret_cast<const unsigned char*>(unread.data() + 1));
      if (unread[0] != 0) {
        co_return End(absl::InternalError(Cat(address_, " sent a compressed message, though the call offered no compression")));
      }
      if (size > kMaxGrpcMessageBytes) {
        co_return End(absl::ResourceExhaustedError(
            Cat(address_, " sent a message of ", size, " bytes, over the limit of ", kMaxGrpcMessageBytes)));
      }
      whole = 5 + size_t{size};
      if (unread.size() >= whole) {
        if (!out.ParseFromArray(unread.data() + 5, static_cast<int>(size))) {
          co_return End(absl::InternalError(Cat(address_, " sent a message that does not parse as ", out.GetTypeName())));
        }
        taken_ += whole;
        if (taken_ == received_.size()) {
          if (received_.capacity() > kKeptBufferBytes) std::string().swap(received_);
          received_.clear();
          taken_ = 0;
        }
        co_return true;
      }
    }
    beast::error_code ec;
    co_await stream_->ReadBody(piece, kReadTurn, ec);
    if (ended_) co_return false;
    if (ec == beast::error::timeout) continue;
    if (ec) co_return End(Broken(ec));
    if (piece.empty()) {  // the response's end
      if (taken_ != received_.size()) co_return End(absl::InternalError(Cat(address_, " ended the call inside a message")));
      co_return End(StatusOf(stream_->trailers(), address_));
    }
    if (taken_ > 0) received_.erase(0, taken_), taken_ = 0;
    if (whole > received_.capacity()) received_.reserve(whole);
    received_ += piece;
  }
}

absl::Status UnaryCall(asio::io_context& io, const std::string& address, const ControlPlaneCredentials& credentials,
                       std::string_view method, const google::protobuf::MessageLite& request,
                       google::protobuf::MessageLite& response, milliseconds timeout) {
  // What the call uses is its own, so that a call still running when this returns
  // (after the grace) touches nothing of the caller's when the loop runs it again.
  struct State {
    std::string address, method;
    ControlPlaneCredentials credentials;
    std::unique_ptr<google::protobuf::MessageLite> request, response;
    GrpcCall::Options options;
    bool given_up = false, done = false;
    GrpcCall* running = nullptr;  // once connected, for the deadline to cancel
    absl::Status status;
  };
  auto state = std::make_shared<State>();
  state->address = address;
  state->method = std::string(method);
  state->credentials = credentials;
  state->request.reset(request.New());
  state->request->CheckTypeAndMergeFrom(request);
  state->response.reset(response.New());
  state->options.connect_timeout = timeout;
  state->options.timeout = timeout;
  state->options.given_up = &state->given_up;
  io.restart();
  asio::co_spawn(
      io,
      [state]() -> asio::awaitable<void> {
        State& s = *state;
        std::unique_ptr<GrpcCall> call = co_await GrpcCall::Start(s.address, s.credentials, s.method, s.options, s.status);
        if (call) {
          s.running = call.get();
          const absl::Status written = co_await call->Write(*s.request, /*last=*/true);
          // Read even after a failed write: it settles the call's status.
          const bool got = co_await call->Read(*s.response);
          // A unary call's one message, then its end (a second one fails the call, so it
          // may land where the first did).
          bool more = false;
          if (got) more = co_await call->Read(*s.response);
          if (more) {
            call->Cancel();
            s.status = absl::InternalError(Cat(s.address, " sent more than one response"));
          } else if (!call->status().ok()) {
            s.status = call->status();
          } else if (!written.ok()) {
            s.status = written;
          } else if (!got) {
            s.status = absl::InternalError(Cat(s.address, " sent no response"));
          }
          s.running = nullptr;
        }
        s.done = true;
      },
      asio::detached);
  const auto deadline = GrpcCall::Clock::now() + timeout;
  while (!state->done && io.run_one_until(deadline) > 0) {
  }
  bool connected = true;
  if (!state->done) {
    state->given_up = true;
    connected = state->running != nullptr;
    if (state->running) state->running->Cancel();
    const auto grace = GrpcCall::Clock::now() + kCancelGrace;
    while (!state->done && io.run_one_until(grace) > 0) {
    }
  }
  if (state->done && state->status.ok()) {
    response.Clear();
    response.CheckTypeAndMergeFrom(*state->response);
    return absl::OkStatus();
  }
  if (state->done && state->status.code() != absl::StatusCode::kCancelled) return state->status;
  const std::string within = Cat(" within ", timeout.count(), " ms");
  return connected ? absl::DeadlineExceededError(Cat("no answer from ", address, within))
                   : absl::UnavailableError(Cat("cannot connect to ", address, within));
}

}  // namespace meshplug::agent::xds
