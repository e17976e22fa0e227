// The agent's own gRPC client against a real gRPC server (Debian's gRPC, as the control
// plane uses) on 127.0.0.1: answers, error statuses, deadlines, an unreachable or
// unverifiable server, and keepalive.
#include "agent/xds/grpc_call.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <atomic>
#include <thread>

#include "common/x509.h"
#include "meshplug/v1/identity.grpc.pb.h"
#include "net/tls.h"

namespace meshplug::agent::xds {
namespace {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
constexpr const char* kSign = "/meshplug.v1.Identity/Sign";

// What the server does is named by the request's node_id.
class TestIdentity final : public v1::Identity::Service {
 public:
  grpc::Status Sign(grpc::ServerContext* ctx, const v1::SignRequest* req, v1::SignResponse* resp) override {
    if (req->node_id() == "refuse") {
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "token 50% spent: «ns/web» may not join");
    }
    if (req->node_id() == "wait") {
      // Until the client's deadline (sent as grpc-timeout) cancels the call; bounded.
      const auto give_up = Clock::now() + std::chrono::seconds(10);
      while (!ctx->IsCancelled() && Clock::now() < give_up) std::this_thread::sleep_for(milliseconds(5));
      saw_cancel = ctx->IsCancelled();
      return grpc::Status(grpc::StatusCode::UNKNOWN, "not cancelled");
    }
    auto auth = ctx->client_metadata().find("authorization");
    resp->set_certificate_chain_pem(req->csr_pem());
    resp->set_trust_bundle_pem(auth == ctx->client_metadata().end() ? "" : std::string(auth->second.data(), auth->second.size()));
    return grpc::Status::OK;
  }
  std::atomic<bool> saw_cancel{false};
};

class Server {
 public:
  explicit Server(std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials()) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", credentials, &port_);
    // Pings as often as the tests send them.
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10);
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
    builder.SetMaxReceiveMessageSize(16 * 1024 * 1024);
    builder.RegisterService(&service);
    server_ = builder.BuildAndStart();
  }
  ~Server() { server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1)); }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  TestIdentity service;

 private:
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

absl::Status Call(const std::string& address, const ControlPlaneCredentials& credentials, const v1::SignRequest& req,
                  v1::SignResponse& resp, milliseconds timeout) {
  asio::io_context io;
  return UnaryCall(io, address, credentials, kSign, req, resp, timeout);
}

v1::SignRequest Request(const std::string& node) {
  v1::SignRequest req;
  req.set_node_id(node);
  req.set_csr_pem("csr of " + node);
  return req;
}

// A CA and a server certificate from it naming `ips` and `dns`.
struct Pki {
  std::string ca_cert, server_key, server_chain;
};
Pki MakePki(std::vector<std::string> ips, std::vector<std::string> dns) {
  Pki p;
  const std::string ca_key = *x509::NewPrivateKey();
  x509::Profile ca;
  ca.common_name = "test root";
  ca.is_ca = true;
  p.ca_cert = *x509::SelfSignedCa(ca_key, ca);
  p.server_key = *x509::NewPrivateKey();
  x509::Profile leaf;
  leaf.common_name = "control plane";
  leaf.ip_addresses = std::move(ips);
  leaf.dns_names = std::move(dns);
  p.server_chain = *x509::SignCsr(*x509::MakeCsr(p.server_key, ""), p.ca_cert, ca_key, leaf);
  return p;
}

std::shared_ptr<grpc::ServerCredentials> TlsServer(const Pki& p) {
  grpc::SslServerCredentialsOptions o;
  o.pem_key_cert_pairs.push_back({p.server_key, p.server_chain});
  return grpc::SslServerCredentials(o);
}

TEST(UnaryCall, TheResponseComesBack) {
  Server server;
  v1::SignResponse resp;
  absl::Status st = Call(server.address(), {}, Request("web"), resp, milliseconds(5000));
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(resp.certificate_chain_pem(), "csr of web");
  EXPECT_EQ(resp.trust_bundle_pem(), "");  // no authorization sent
}

TEST(UnaryCall, MessagesOfMegabytesCrossFlowControlWhole) {
  Server server;
  v1::SignRequest req = Request("web");
  std::string big(6 * 1024 * 1024, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  req.set_csr_pem(big);
  v1::SignResponse resp;
  absl::Status st = Call(server.address(), {}, req, resp, milliseconds(20000));
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_TRUE(resp.certificate_chain_pem() == big) << resp.certificate_chain_pem().size();
}

TEST(UnaryCall, ABearerTokenIsNeverSentInPlaintext) {
  Server server;
  v1::SignResponse resp;
  absl::Status st = Call(server.address(), {nullptr, "tok-1"}, Request("web"), resp, milliseconds(5000));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message(), "a bearer token is sent only over TLS");
}

TEST(UnaryCall, AnErrorKeepsItsCodeAndItsMessageByteForByte) {
  Server server;
  v1::SignResponse resp;
  absl::Status st = Call(server.address(), {}, Request("refuse"), resp, milliseconds(5000));
  EXPECT_EQ(st.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(st.message(), "token 50% spent: «ns/web» may not join");
}

TEST(UnaryCall, PastItsTimeoutItIsDeadlineExceededAndTheServerSeesTheCallEnd) {
  Server server;
  v1::SignResponse resp;
  const auto began = Clock::now();
  absl::Status st = Call(server.address(), {}, Request("wait"), resp, milliseconds(300));
  EXPECT_EQ(st.code(), absl::StatusCode::kDeadlineExceeded) << st;
  EXPECT_LT(Clock::now() - began, std::chrono::seconds(3));
  // The server learns of the deadline from grpc-timeout, or of the cancel.
  const auto until = Clock::now() + std::chrono::seconds(5);
  while (!server.service.saw_cancel && Clock::now() < until) std::this_thread::sleep_for(milliseconds(5));
  EXPECT_TRUE(server.service.saw_cancel);
}

TEST(UnaryCall, NothingListeningIsUnavailableAndSaysWhere) {
  asio::io_context io;
  asio::ip::tcp::acceptor probe(io, {asio::ip::make_address("127.0.0.1"), 0});
  const std::string address = "127.0.0.1:" + std::to_string(probe.local_endpoint().port());
  probe.close();
  v1::SignResponse resp;
  absl::Status st = Call(address, {}, Request("web"), resp, milliseconds(2000));
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(st.message().find("cannot connect to " + address), std::string::npos) << st;
}

TEST(UnaryCall, ADeadlineWhileConnectingIsUnavailableSoTheNextReplicaMayBeAsked) {
  // Accepted by the kernel, but its TLS handshake never answered: nothing was sent.
  asio::io_context io;
  asio::ip::tcp::acceptor silent(io, {asio::ip::make_address("127.0.0.1"), 0});
  const std::string address = "127.0.0.1:" + std::to_string(silent.local_endpoint().port());
  const Pki pki = MakePki({"127.0.0.1"}, {});
  auto roots = net::ServerVerifyingContext(pki.ca_cert, "", "");
  v1::SignResponse resp;
  const auto began = Clock::now();
  absl::Status st = Call(address, {*roots, "tok"}, Request("web"), resp, milliseconds(300));
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable) << st;
  EXPECT_EQ(st.message().find("cannot connect to " + address), 0u) << st;
  EXPECT_LT(Clock::now() - began, std::chrono::seconds(3));
}

TEST(UnaryCall, AnAddressThatIsNotHostAndPortIsRefusedAsSuch) {
  v1::SignResponse resp;
  for (const char* bad : {"control-plane", "127.0.0.1:", ":15010", "127.0.0.1:99999"}) {
    absl::Status st = Call(bad, {}, Request("web"), resp, milliseconds(1000));
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(st.message().find("is not host:port"), std::string::npos) << st;
  }
}

TEST(UnaryCall, OverTlsTheServerMustChainToTheRootsAndNameTheHostCalled) {
  const Pki pki = MakePki({"127.0.0.1"}, {});
  Server server(TlsServer(pki));
  v1::SignResponse resp;
  auto ours = net::ServerVerifyingContext(pki.ca_cert, "", "");
  ASSERT_TRUE(ours.ok()) << ours.status();
  absl::Status st = Call(server.address(), {*ours, "tok"}, Request("web"), resp, milliseconds(5000));
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(resp.certificate_chain_pem(), "csr of web");
  EXPECT_EQ(resp.trust_bundle_pem(), "Bearer tok");  // the token went as gRPC's access token does

  const Pki other = MakePki({"127.0.0.1"}, {});
  auto wrong_roots = net::ServerVerifyingContext(other.ca_cert, "", "");
  st = Call(server.address(), {*wrong_roots, "tok"}, Request("web"), resp, milliseconds(5000));
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(st.message().find("certificate verify failed"), std::string::npos) << st;

  const Pki misnamed = MakePki({"127.0.0.2"}, {"control-plane.example"});
  Server elsewhere(TlsServer(misnamed));
  auto roots = net::ServerVerifyingContext(misnamed.ca_cert, "", "");
  st = Call(elsewhere.address(), {*roots, "tok"}, Request("web"), resp, milliseconds(5000));
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(st.message().find("certificate verify failed"), std::string::npos) << st;
}

// Runs `call`'s first Read to its end on `io`, at most `bound`; the call's status.
absl::Status ReadToEnd(asio::io_context& io, const std::string& address, const GrpcCall::Options& options,
                       const v1::SignRequest& req, Clock::duration bound) {
  absl::Status status = absl::UnknownError("not finished");
  bool done = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        absl::Status started;
        const ControlPlaneCredentials plaintext;
        std::unique_ptr<GrpcCall> call = co_await GrpcCall::Start(address, plaintext, kSign, options, started);
        if (!call) {
          status = started;
        } else {
          status = co_await call->Write(req, true);
          v1::SignResponse resp;
          if (status.ok()) {
            for (;;) {
              const bool got = co_await call->Read(resp);
              if (!got) break;
            }
            status = call->status();
          }
        }
        done = true;
      },
      asio::detached);
  const auto until = Clock::now() + bound;
  while (!done && io.run_one_until(until) > 0) {
  }
  return status;
}

TEST(GrpcCall, KeepalivePingsThatGoUnansweredEndTheCallAndAnsweredOnesKeepItOpen) {
  // A server that accepts and reads but never answers: not even the HTTP/2 settings.
  asio::io_context silent_io;
  asio::ip::tcp::acceptor silent(silent_io, {asio::ip::make_address("127.0.0.1"), 0});
  asio::ip::tcp::socket accepted(silent_io);
  std::thread silent_thread([&] {
    boost::system::error_code ec;
    silent.accept(accepted, ec);
    char buf[4096];
    while (!ec) accepted.read_some(asio::buffer(buf), ec);
  });
  GrpcCall::Options options;
  options.keepalive = milliseconds(100);
  options.keepalive_timeout = milliseconds(300);
  asio::io_context io;
  const auto began = Clock::now();
  absl::Status st = ReadToEnd(io, "127.0.0.1:" + std::to_string(silent.local_endpoint().port()), options,
                              Request("web"), std::chrono::seconds(10));
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable) << st;
  EXPECT_LT(Clock::now() - began, std::chrono::seconds(5));
  boost::system::error_code ignored;
  accepted.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  silent_thread.join();

  // The same pings to a server that answers them: the call lives until its deadline.
  Server server;
  options.timeout = milliseconds(1500);
  asio::io_context io2;
  st = ReadToEnd(io2, server.address(), options, Request("wait"), std::chrono::seconds(10));
  EXPECT_EQ(st.code(), absl::StatusCode::kDeadlineExceeded) << st;
}

}  // namespace
}  // namespace meshplug::agent::xds
