#include "agent/proxy/grpc.h"

#include <gtest/gtest.h>

namespace meshplug::agent::proxy {
namespace {

namespace http = boost::beast::http;
using std::chrono::milliseconds;

TEST(GrpcTest, RecognisesGrpcContentTypes) {
  http::request_header<> request;
  for (const char* type : {"application/grpc", "application/grpc+proto", "application/GRPC;charset=x"}) {
    request.set(http::field::content_type, type);
    EXPECT_TRUE(IsGrpc(request)) << type;
  }
  for (const char* type : {"application/grpc-web", "application/json", "", "application/grp"}) {
    request.set(http::field::content_type, type);
    EXPECT_FALSE(IsGrpc(request)) << type;
  }
}

TEST(GrpcTest, ReadsTimeoutsAndRefusesMalformedOnes) {
  EXPECT_EQ(GrpcTimeout("100m"), milliseconds(100));
  EXPECT_EQ(GrpcTimeout("2S"), milliseconds(2000));
  EXPECT_EQ(GrpcTimeout("1M"), milliseconds(60'000));
  EXPECT_EQ(GrpcTimeout("1H"), milliseconds(3'600'000));
  EXPECT_EQ(GrpcTimeout("1500u"), milliseconds(2));  // rounded up, never to "none"
  EXPECT_EQ(GrpcTimeout("1n"), milliseconds(1));
  for (const char* bad : {"", "m", "100", "10x", "-1S", "123456789S", " 1S"}) {
    EXPECT_EQ(GrpcTimeout(bad), std::nullopt) << bad;
  }
}

TEST(GrpcTest, LocalRepliesBecomeTrailersOnlyErrors) {
  http::response_header<> header;
  header.result(403);
  header.set("x-kept", "yes");
  header.set(http::field::content_length, "10");
  std::string body = "no route for 100%\n";
  ToGrpcError(header, body);
  EXPECT_EQ(header.result_int(), 200u);
  EXPECT_EQ(header[http::field::content_type], "application/grpc");
  EXPECT_EQ(header["grpc-status"], "7");
  EXPECT_EQ(header["grpc-message"], "no route for 100%25");
  EXPECT_EQ(header["x-kept"], "yes");
  EXPECT_EQ(header.count(http::field::content_length), 0u);
  EXPECT_EQ(body, "");

  // A plugin's own gRPC status is kept.
  http::response_header<> denied;
  denied.result(401);
  denied.set("grpc-status", "16");
  denied.set("grpc-message", "token expired");
  std::string empty;
  ToGrpcError(denied, empty);
  EXPECT_EQ(denied["grpc-status"], "16");
  EXPECT_EQ(denied["grpc-message"], "token expired");

  http::response_header<> timeout;
  timeout.result(504);
  std::string text = "upstream request timeout\n";
  ToGrpcError(timeout, text);
  EXPECT_EQ(timeout["grpc-status"], "4");
}

}  // namespace
}  // namespace meshplug::agent::proxy
