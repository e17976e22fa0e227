#include "net/strict_line_endings.h"

#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/read.hpp>
#include <string>

namespace meshplug::net {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

TEST(HasBareLf, FindsAnLfWithoutItsCr) {
  EXPECT_FALSE(HasBareLf(asio::buffer(std::string_view("GET / HTTP/1.1\r\nHost: a\r\n"))));
  EXPECT_FALSE(HasBareLf(asio::buffer(std::string_view("5\r"))));
  EXPECT_TRUE(HasBareLf(asio::buffer(std::string_view("\n"))));
  EXPECT_TRUE(HasBareLf(asio::buffer(std::string_view("5\r\n\n"))));
  EXPECT_TRUE(HasBareLf(asio::buffer(std::string_view("a\r\nb\nc"))));
}

// Reads `bytes` sent by a peer: the header, then the body, as the proxy does. The error
// of the first failing read (or none), and the body.
std::pair<boost::beast::error_code, std::string> Parse(const std::string& bytes) {
  asio::io_context io;
  tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  tcp::socket client(io), server(io);
  client.connect(acceptor.local_endpoint());
  acceptor.accept(server);
  asio::write(client, asio::buffer(bytes));
  client.shutdown(tcp::socket::shutdown_send);  // a waiting parser would see EOF, not hang

  boost::beast::flat_buffer buffer;
  http::request_parser<http::buffer_body> parser;
  boost::beast::error_code ec;
  StrictLineEndings strict(server, buffer);
  std::string body;
  http::async_read_header(strict, buffer, parser, [&](boost::beast::error_code e, size_t) { ec = e; });
  io.run();
  while (!ec && !parser.is_done()) {
    char piece[64];
    parser.get().body().data = piece;
    parser.get().body().size = sizeof piece;
    io.restart();
    http::async_read_some(strict, buffer, parser, [&](boost::beast::error_code e, size_t) { ec = e; });
    io.run();
    if (ec == http::error::need_buffer) ec = {};
    body.append(piece, sizeof piece - parser.get().body().size);
  }
  return {ec, body};
}

TEST(StrictLineEndings, RefusesBareLfInFramingAndKeepsItInBodies) {
  const std::string chunked = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
  // In the header Beast finds a bare LF itself (bad_version, bad_value); a parser that
  // waited would see the peer's EOF (partial_message).
  for (const char* header : {"GET / HTTP/1.1\nHost: a\n\n", "GET / HTTP/1.1\r\nHost: a\nx: 1\n\n"}) {
    const auto ec = Parse(header).first;
    EXPECT_TRUE(ec && ec != http::error::partial_message) << header << ": " << ec.message();
  }
  EXPECT_EQ(Parse(chunked + "5\nhello\n0\n\n").first, http::error::bad_line_ending);
  EXPECT_EQ(Parse(chunked + "5\r\nhello\r\n0\n\n").first, http::error::bad_line_ending);
  EXPECT_EQ(Parse(chunked + "5\r\nhello\r\n0\r\nx: 1\n\r\n").first, http::error::bad_line_ending);
  auto ok = Parse(chunked + "5\r\nhe\nlo\r\n3\r\n\n\n\n\r\n0\r\n\r\n");
  EXPECT_FALSE(ok.first) << ok.first.message();
  EXPECT_EQ(ok.second, "he\nlo\n\n\n");
  auto length = Parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n\n\n\n\n");
  EXPECT_FALSE(length.first) << length.first.message();
  EXPECT_EQ(length.second, "\n\n\n\n");
}

}  // namespace
}  // namespace meshplug::net
