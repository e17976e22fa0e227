#include "plugins/http_client/http_client.h"

#include <gtest/gtest.h>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "plugins/http_client/testing.h"

namespace meshplug::plugins::http_client {
namespace {

namespace asio = boost::asio;
using testing::LoopbackServer;
using testing::RunFor;
using Reply = http::response<http::string_body>;

Request To(const std::string& address) {
  Request request;
  request.target = *ParseHostPort(address);
  return request;
}

TEST(ParseHostPort, AcceptsNamesAndLiterals) {
  auto v4 = ParseHostPort("127.0.0.1:8079");
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->host, "127.0.0.1");
  EXPECT_EQ(v4->port, 8079);
  auto name = ParseHostPort("ext-auth.auth:80");
  ASSERT_TRUE(name);
  EXPECT_EQ(name->host, "ext-auth.auth");
  auto v6 = ParseHostPort("[::1]:443");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
}

TEST(ParseHostPort, RejectsMalformed) {
  for (const char* bad : {"", "host", "host:", ":80", "host:0", "host:65536", "host:8x", "::1:80",
                          "[::1:80"}) {
    EXPECT_FALSE(ParseHostPort(bad)) << bad;
  }
}

TEST(Fetch, SendsRequestAndReadsResponse) {
  asio::io_context io;
  LoopbackServer server(io, [](const http::request<http::string_body>& req) -> asio::awaitable<Reply> {
    Reply reply(http::status::created, 11);
    reply.set("x-echo-method", req.method_string());
    reply.set("x-echo-token", req["x-token"]);
    reply.body() = std::string(req.target()) + "|" + req.body();
    co_return reply;
  });
  Request request = To(server.address());
  request.method = http::verb::post;
  request.path = "/check?x=1";
  request.headers.set("x-token", "abc");
  request.body = "payload";
  auto result = RunFor(io, Fetch(request));
  ASSERT_TRUE(result);
  ASSERT_TRUE(result->response) << result->message;
  EXPECT_EQ(result->response->status, 201u);
  EXPECT_EQ(result->response->headers["x-echo-method"], "POST");
  EXPECT_EQ(result->response->headers["x-echo-token"], "abc");
  EXPECT_EQ(result->response->body, "/check?x=1|payload");
}

TEST(Fetch, ResolvesNames) {
  asio::io_context io;
  LoopbackServer server(io, [](const auto&) -> asio::awaitable<Reply> {
    co_return Reply(http::status::ok, 11);
  });
  Request request = To(server.address());
  request.target.host = "localhost";
  request.timeout = std::chrono::seconds(5);
  auto result = RunFor(io, Fetch(request));
  ASSERT_TRUE(result);
  // localhost may resolve to ::1 first; the client tries every address.
  ASSERT_TRUE(result->response) << result->message;
  EXPECT_EQ(result->response->status, 200u);
}

TEST(Fetch, ReportsConnectionRefused) {
  asio::io_context io;
  auto result = RunFor(io, Fetch(To(testing::ClosedLoopbackAddress())));
  ASSERT_TRUE(result);
  EXPECT_FALSE(result->response);
  EXPECT_FALSE(result->timed_out());
  EXPECT_NE(result->message.find("connect 127.0.0.1:"), std::string::npos) << result->message;
}

TEST(Fetch, TimesOutOnSlowServer) {
  asio::io_context io;
  LoopbackServer server(io, [](const auto&) -> asio::awaitable<Reply> {
    asio::steady_timer never(co_await asio::this_coro::executor, std::chrono::hours(1));
    co_await never.async_wait(asio::use_awaitable);
    co_return Reply(http::status::ok, 11);
  });
  Request request = To(server.address());
  request.timeout = std::chrono::milliseconds(100);
  const auto start = std::chrono::steady_clock::now();
  auto result = RunFor(io, Fetch(request));
  ASSERT_TRUE(result);
  EXPECT_FALSE(result->response);
  EXPECT_TRUE(result->timed_out()) << result->message;
  EXPECT_NE(result->message.find("timed out after 100 ms"), std::string::npos) << result->message;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(Fetch, RefusesOversizedBody) {
  asio::io_context io;
  LoopbackServer server(io, [](const auto&) -> asio::awaitable<Reply> {
    Reply reply(http::status::ok, 11);
    reply.body() = std::string(4096, 'x');
    co_return reply;
  });
  Request request = To(server.address());
  request.max_response_body = 1024;
  auto result = RunFor(io, Fetch(request));
  ASSERT_TRUE(result);
  EXPECT_FALSE(result->response);
  EXPECT_NE(result->message.find("read from"), std::string::npos) << result->message;
}

}  // namespace
}  // namespace meshplug::plugins::http_client
