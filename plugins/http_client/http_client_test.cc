#include "plugins/http_client/http_client.h"

#include <gtest/gtest.h>

#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "net/upstream_pool.h"
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
  request.method = "POST";
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

// Keep-alive through the worker's pool (net::UpstreamPool, as the agent passes it in
// HttpContext::pool).

Reply Ok(std::string body = "ok") {
  Reply reply(http::status::ok, 11);
  reply.body() = std::move(body);
  return reply;
}

// Answers "ok" and counts the requests it answers.
LoopbackServer::Handler CountingHandler(std::shared_ptr<int> answered) {
  return [answered](const http::request<http::string_body>&) -> asio::awaitable<Reply> {
    ++*answered;
    co_return Ok();
  };
}

// The pool of `io`'s one thread, and calls that go through it.
struct Pooled : ::testing::Test {
  std::optional<Result> Call(const std::string& address, http::verb method = http::verb::get) {
    Request request = To(address);
    request.method = std::string(http::to_string(method));
    return RunFor(io, Fetch(request, &pool));
  }

  // Calls `server` twice: the first call is answered; the second, with a 100 ms timeout,
  // times out within it.
  void SecondCallTimesOutAfter100Ms(const LoopbackServer& server) {
    auto first = Call(server.address());
    ASSERT_TRUE(first && first->response) << (first ? first->message : "did not finish");
    Request request = To(server.address());
    request.timeout = std::chrono::milliseconds(100);
    const auto start = std::chrono::steady_clock::now();
    auto second = RunFor(io, Fetch(request, &pool));
    ASSERT_TRUE(second);
    EXPECT_FALSE(second->response);
    EXPECT_TRUE(second->timed_out()) << second->message;
    EXPECT_NE(second->message.find("timed out after 100 ms"), std::string::npos) << second->message;
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  }

  asio::io_context io;
  net::UpstreamPool pool{io.get_executor()};
};

TEST_F(Pooled, SequentialCallsShareOneConnection) {
  LoopbackServer server(io, [](const http::request<http::string_body>& req) -> asio::awaitable<Reply> {
    co_return Ok(req.keep_alive() ? "keep-alive" : "close");
  });
  for (int i = 0; i < 3; ++i) {
    auto result = Call(server.address());
    ASSERT_TRUE(result && result->response) << (result ? result->message : "did not finish");
    EXPECT_EQ(result->response->body, "keep-alive");
    EXPECT_EQ(pool.idle(), 1u);
  }
  EXPECT_EQ(server.requests(), 3);
  EXPECT_EQ(server.connections(), 1);
}

TEST_F(Pooled, WithoutAPoolEachCallHasItsOwnConnection) {
  LoopbackServer server(io, [](const http::request<http::string_body>& req) -> asio::awaitable<Reply> {
    co_return Ok(req.keep_alive() ? "keep-alive" : "close");
  });
  for (int i = 0; i < 2; ++i) {
    auto result = RunFor(io, Fetch(To(server.address())));
    ASSERT_TRUE(result && result->response);
    EXPECT_EQ(result->response->body, "close");
  }
  EXPECT_EQ(server.connections(), 2);
}

TEST_F(Pooled, ConnectionCloseFromTheServerIsHonoured) {
  LoopbackServer server(io, [](const auto&) -> asio::awaitable<Reply> {
    Reply reply = Ok();
    reply.keep_alive(false);
    co_return reply;
  });
  for (int i = 0; i < 2; ++i) {
    auto result = Call(server.address());
    ASSERT_TRUE(result && result->response) << (result ? result->message : "did not finish");
    EXPECT_EQ(pool.idle(), 0u);
  }
  EXPECT_EQ(server.connections(), 2);
}

// A HEAD response announces a length but has no body: it ends at its header, and the
// connection carries the next call.
TEST_F(Pooled, HeadResponseEndsAtItsHeader) {
  LoopbackServer server(io, [](const auto&) -> asio::awaitable<Reply> { co_return Ok("hello"); });
  auto head = Call(server.address(), http::verb::head);
  ASSERT_TRUE(head && head->response) << (head ? head->message : "did not finish");
  EXPECT_EQ(head->response->headers[http::field::content_length], "5");
  EXPECT_EQ(head->response->body, "");
  auto get = Call(server.address());
  ASSERT_TRUE(get && get->response) << (get ? get->message : "did not finish");
  EXPECT_EQ(get->response->body, "hello");
  EXPECT_EQ(server.connections(), 1);
}

// The server ends a kept-alive connection on its own after one answer. Whether the client
// notices before reusing it (the pool checks) or after (the request fails before any
// response byte), the GET gets through on a new connection.
TEST_F(Pooled, GetSurvivesAServerClosingIdleConnections) {
  auto answered = std::make_shared<int>(0);
  LoopbackServer server(io, CountingHandler(answered), {.answers_per_connection = 1});
  for (int i = 0; i < 3; ++i) {
    auto result = Call(server.address());
    ASSERT_TRUE(result && result->response) << (result ? result->message : "did not finish");
  }
  EXPECT_EQ(*answered, 3);
  EXPECT_EQ(server.connections(), 3);
}

// The close crosses the request: the server reads the second request on the connection
// and closes it without an answer. A GET is sent again, once, on a new connection.
TEST_F(Pooled, StaleConnectionIsReplacedForIdempotentRequests) {
  for (const http::verb method : {http::verb::get, http::verb::put, http::verb::delete_}) {
    auto answered = std::make_shared<int>(0);
    LoopbackServer server(io, CountingHandler(answered),
                          {.answers_per_connection = 1, .read_one_more = true});
    for (int i = 0; i < 2; ++i) {
      auto result = Call(server.address(), method);
      ASSERT_TRUE(result && result->response) << (result ? result->message : "did not finish");
    }
    EXPECT_EQ(server.requests(), 3) << method;  // the second one twice
    EXPECT_EQ(*answered, 2) << method;
    EXPECT_EQ(server.connections(), 2) << method;
  }
}

// The same for a POST: the server may have acted on it, so it is not sent again and the
// call fails, saying why.
TEST_F(Pooled, NonIdempotentRequestIsNotResentAfterAStaleConnection) {
  auto answered = std::make_shared<int>(0);
  LoopbackServer server(io, CountingHandler(answered),
                        {.answers_per_connection = 1, .read_one_more = true});
  auto first = Call(server.address(), http::verb::post);
  ASSERT_TRUE(first && first->response) << (first ? first->message : "did not finish");
  auto second = Call(server.address(), http::verb::post);
  ASSERT_TRUE(second);
  EXPECT_FALSE(second->response);
  EXPECT_FALSE(second->timed_out());
  EXPECT_NE(second->message.find("read from " + server.address()), std::string::npos)
      << second->message;
  EXPECT_NE(second->message.find("keep-alive connection; not resent: POST is not idempotent"),
            std::string::npos)
      << second->message;
  EXPECT_EQ(server.requests(), 2);
  EXPECT_EQ(*answered, 1);
  EXPECT_EQ(server.connections(), 1);
  // The next call opens a new connection.
  auto third = Call(server.address(), http::verb::post);
  ASSERT_TRUE(third && third->response) << (third ? third->message : "did not finish");
  EXPECT_EQ(server.connections(), 2);
}

// A handler that answers the first request and never the ones after it.
auto OnlyTheFirstAnswer() {
  return [answered = std::make_shared<int>(0)](const auto&) -> asio::awaitable<Reply> {
    if (++*answered > 1) {
      asio::steady_timer never(co_await asio::this_coro::executor, std::chrono::hours(1));
      co_await never.async_wait(asio::use_awaitable);
    }
    co_return Ok();
  };
}

// A slow answer on a reused connection times out like any other, and the connection is
// not kept (its response may still come).
TEST_F(Pooled, TimeoutHoldsOnAReusedConnection) {
  LoopbackServer server(io, OnlyTheFirstAnswer());
  SecondCallTimesOutAfter100Ms(server);
  if (HasFatalFailure()) return;
  EXPECT_EQ(server.connections(), 1);  // a timeout is not retried
  EXPECT_EQ(pool.idle(), 0u);
}

// The resend after a stale connection shares the call's one deadline.
TEST_F(Pooled, ResendStaysWithinTheDeadline) {
  LoopbackServer server(io, OnlyTheFirstAnswer(), {.answers_per_connection = 1, .read_one_more = true});
  SecondCallTimesOutAfter100Ms(server);
  if (HasFatalFailure()) return;
  EXPECT_EQ(server.connections(), 2);  // the resend happened, on a new connection
}

// A server that sends 100 Continue, then the answer, in separate writes: the answer is the
// result, and the connection carries the next call (the server accepts only one).
TEST_F(Pooled, InterimResponsesAreNotTakenForTheAnswer) {
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  auto serve = [&acceptor]() -> asio::awaitable<void> {
    auto socket = co_await acceptor.async_accept(asio::use_awaitable);
    boost::beast::flat_buffer buffer;
    for (int i = 1; i <= 2; ++i) {
      http::request<http::string_body> request;
      co_await http::async_read(socket, buffer, request, asio::use_awaitable);
      co_await asio::async_write(socket, asio::buffer(std::string("HTTP/1.1 100 Continue\r\n\r\n")),
                                 asio::use_awaitable);
      const std::string body = "answer " + std::to_string(i);
      co_await asio::async_write(
          socket, asio::buffer("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body),
          asio::use_awaitable);
    }
  };
  asio::co_spawn(io, serve(), asio::detached);
  const std::string address = "127.0.0.1:" + std::to_string(acceptor.local_endpoint().port());
  for (int i = 1; i <= 2; ++i) {
    auto result = Call(address);
    ASSERT_TRUE(result && result->response) << (result ? result->message : "did not finish");
    EXPECT_EQ(result->response->status, 200u);
    EXPECT_EQ(result->response->body, "answer " + std::to_string(i));
  }
}

// A 408 on a kept-alive connection (a server closing it as the request arrived) sends a
// GET once more, on a new connection; a POST gets the 408.
TEST_F(Pooled, A408OnAKeptAliveConnectionIsRetriedForIdempotentRequests) {
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  // Each connection answers its first request, and the second with 408 and a close.
  auto serve = [&acceptor]() -> asio::awaitable<void> {
    for (int connection = 1;; ++connection) {
      auto socket = co_await acceptor.async_accept(asio::use_awaitable);
      boost::beast::flat_buffer buffer;
      for (int i = 1; i <= 2; ++i) {
        http::request<http::string_body> request;
        boost::beast::error_code ec;
        co_await http::async_read(socket, buffer, request, asio::redirect_error(asio::use_awaitable, ec));
        if (ec) break;
        const std::string answer =
            i == 1 ? "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n" + std::to_string(connection)
                   : "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        co_await asio::async_write(socket, asio::buffer(answer), asio::redirect_error(asio::use_awaitable, ec));
      }
    }
  };
  asio::co_spawn(io, serve(), asio::detached);
  const std::string address = "127.0.0.1:" + std::to_string(acceptor.local_endpoint().port());
  auto first = Call(address);
  ASSERT_TRUE(first && first->response) << (first ? first->message : "did not finish");
  EXPECT_EQ(first->response->body, "1");
  auto again = Call(address);  // 408 on connection 1, then connection 2
  ASSERT_TRUE(again && again->response) << (again ? again->message : "did not finish");
  EXPECT_EQ(again->response->status, 200u);
  EXPECT_EQ(again->response->body, "2");
  auto post = Call(address, http::verb::post);  // 408 on connection 2: not sent again
  ASSERT_TRUE(post && post->response) << (post ? post->message : "did not finish");
  EXPECT_EQ(post->response->status, 408u);
}

// A response whose framing has a bare LF fails at once (within the default 5 s timeout
// the call would otherwise wait for), with the reason.
TEST_F(Pooled, BareLfInResponseFramingFailsTheCallAtOnce) {
  for (const std::string& reply : {std::string("HTTP/1.1 200 OK\nContent-Length: 2\n\nok"),
                                   std::string("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nok\n0\n\n")}) {
    asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
    auto serve = [&acceptor, reply]() -> asio::awaitable<void> {
      auto socket = co_await acceptor.async_accept(asio::use_awaitable);
      boost::beast::flat_buffer buffer;
      http::request<http::string_body> request;
      co_await http::async_read(socket, buffer, request, asio::use_awaitable);
      co_await asio::async_write(socket, asio::buffer(reply), asio::use_awaitable);
      asio::steady_timer hold(socket.get_executor(), std::chrono::seconds(30));
      co_await hold.async_wait(asio::use_awaitable);
    };
    asio::co_spawn(io, serve(), asio::detached);
    Request request = To("127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()));
    request.timeout = std::chrono::seconds(30);
    const auto start = std::chrono::steady_clock::now();
    auto result = RunFor(io, Fetch(request, &pool));
    ASSERT_TRUE(result) << reply;
    EXPECT_FALSE(result->response) << reply;
    EXPECT_EQ(result->message.rfind("read from", 0), 0u) << result->message;
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5)) << reply;
  }
}

// Calls to different host:port pairs do not share connections.
TEST_F(Pooled, ConnectionsArePerHostAndPort) {
  LoopbackServer a(io, [](const auto&) -> asio::awaitable<Reply> { co_return Ok("a"); });
  LoopbackServer b(io, [](const auto&) -> asio::awaitable<Reply> { co_return Ok("b"); });
  for (int i = 0; i < 2; ++i) {
    for (auto* server : {&a, &b}) {
      auto result = Call(server->address());
      ASSERT_TRUE(result && result->response) << (result ? result->message : "did not finish");
      EXPECT_EQ(result->response->body, server == &a ? "a" : "b");
    }
  }
  EXPECT_EQ(a.connections(), 1);
  EXPECT_EQ(b.connections(), 1);
  EXPECT_EQ(pool.endpoints(), 2u);
}

TEST_F(Pooled, ReportsConnectionRefused) {
  auto result = Call(testing::ClosedLoopbackAddress());
  ASSERT_TRUE(result);
  EXPECT_FALSE(result->response);
  EXPECT_NE(result->message.find("connect 127.0.0.1:"), std::string::npos) << result->message;
}

}  // namespace
}  // namespace meshplug::plugins::http_client
