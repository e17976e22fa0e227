#include "net/read_http.h"

#include <gtest/gtest.h>

#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <string>
#include <string_view>
#include <tuple>

namespace meshplug::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// A buffer holding `bytes`, as a connection's read buffer after a socket read.
beast::flat_buffer Holding(std::string_view bytes) {
  beast::flat_buffer buffer;
  buffer.commit(asio::buffer_copy(buffer.prepare(bytes.size()), asio::buffer(bytes)));
  return buffer;
}

TEST(ParseBuffered, AWholeHeaderNeedsNoRead) {
  beast::flat_buffer buffer = Holding("GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b");  // and the start of the next
  http::request_parser<http::empty_body> parser;
  beast::error_code ec;
  EXPECT_TRUE(ParseBuffered(parser, buffer, ParseUntil::kHeaderDone, ec));
  EXPECT_FALSE(ec);
  EXPECT_EQ(parser.get().target(), "/a");
  EXPECT_EQ(beast::buffers_to_string(buffer.data()), "GET /b");  // left for the next request
  // Asked again, it is still done, and nothing more is consumed.
  EXPECT_TRUE(ParseBuffered(parser, buffer, ParseUntil::kHeaderDone, ec));
  EXPECT_EQ(buffer.size(), 6u);
}

TEST(ParseBuffered, APartialHeaderOrNothingNeedsTheSocket) {
  beast::flat_buffer buffer;
  http::request_parser<http::empty_body> parser;
  beast::error_code ec;
  EXPECT_FALSE(ParseBuffered(parser, buffer, ParseUntil::kHeaderDone, ec));
  EXPECT_FALSE(ParseBuffered(parser, buffer, ParseUntil::kProgress, ec));
  buffer = Holding("GET /a HTTP/1.1\r\nHost:");
  EXPECT_FALSE(ParseBuffered(parser, buffer, ParseUntil::kHeaderDone, ec));
  EXPECT_FALSE(ec);  // need_more is not an error to report
  EXPECT_EQ(beast::buffers_to_string(buffer.data()), "Host:");  // kept for the read that completes it
  EXPECT_FALSE(parser.is_header_done());
}

TEST(ParseBuffered, AMalformedHeaderIsItsError) {
  beast::flat_buffer buffer = Holding("GET /a HTTP/9.9\r\n\r\n");
  http::request_parser<http::empty_body> parser;
  beast::error_code ec;
  EXPECT_TRUE(ParseBuffered(parser, buffer, ParseUntil::kHeaderDone, ec));
  EXPECT_EQ(ec, http::error::bad_version);
}

TEST(ParseBuffered, ABufferedBodyIsReadPieceByPiece) {
  beast::flat_buffer buffer = Holding("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
  http::response_parser<http::buffer_body> parser;
  beast::error_code ec;
  ASSERT_TRUE(ParseBuffered(parser, buffer, ParseUntil::kHeaderDone, ec));
  // Pieces of 3 bytes: the first fills its piece (need_buffer), the second ends the body.
  const struct {
    std::string_view bytes;
    beast::error_code ec;
  } pieces[] = {{"hel", http::error::need_buffer}, {"lo", {}}};
  for (const auto& expected : pieces) {
    char piece[3];
    parser.get().body().data = piece;
    parser.get().body().size = sizeof piece;
    EXPECT_TRUE(ParseBuffered(parser, buffer, ParseUntil::kProgress, ec));
    EXPECT_EQ(ec, expected.ec);
    EXPECT_EQ(std::string_view(piece, sizeof piece - parser.get().body().size), expected.bytes);
  }
  EXPECT_TRUE(parser.is_done());
}

TEST(HasBareLf, FindsAnLfWithoutItsCr) {
  EXPECT_FALSE(HasBareLf(asio::buffer(std::string_view("GET / HTTP/1.1\r\nHost: a\r\n"))));
  EXPECT_FALSE(HasBareLf(asio::buffer(std::string_view("5\r"))));
  EXPECT_TRUE(HasBareLf(asio::buffer(std::string_view("\n"))));
  EXPECT_TRUE(HasBareLf(asio::buffer(std::string_view("5\r\n\n"))));
  EXPECT_TRUE(HasBareLf(asio::buffer(std::string_view("a\r\nb\nc"))));
  // From an offset: what comes before it is not looked at, but a CR just before it counts.
  EXPECT_FALSE(HasBareLf(asio::buffer(std::string_view("a\r\n")), 2));
  EXPECT_FALSE(HasBareLf(asio::buffer(std::string_view("a\nb\r\n")), 2));
  EXPECT_TRUE(HasBareLf(asio::buffer(std::string_view("a\r\nb\n")), 3));
}

// A connected pair on 127.0.0.1: the peer writes, the stream is read with ReadHttp.
struct Pair {
  asio::io_context io;
  tcp::socket peer{io};
  beast::tcp_stream stream{io};

  Pair() {
    tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
    peer.connect(acceptor.local_endpoint());
    stream.socket() = acceptor.accept();
  }

  // The peer sends `bytes` and ends its side: a waiting parser sees EOF, not a hang.
  void Send(std::string_view bytes) {
    asio::write(peer, asio::buffer(bytes));
    peer.shutdown(tcp::socket::shutdown_send);
  }

  // Runs one ReadHttp to completion (bounded: each read has a 5 s deadline); its error.
  template <bool isRequest>
  beast::error_code Read(beast::flat_buffer& buffer, http::basic_parser<isRequest>& parser, ParseUntil until,
                         std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    beast::error_code ec = http::error::need_more;  // replaced when the read completes
    asio::co_spawn(io, ReadHttp(stream, buffer, parser, until, timeout, ec), asio::detached);
    io.restart();
    io.run();
    return ec;
  }
};

// Reads `bytes`, sent by a peer that then ends its side: the header, then the body, as
// the proxy does. The error of the first failing read (or none), and the body.
std::pair<beast::error_code, std::string> Parse(const std::string& bytes) {
  Pair pair;
  pair.Send(bytes);
  beast::flat_buffer buffer;
  http::request_parser<http::buffer_body> parser;
  std::string body;
  beast::error_code ec = pair.Read(buffer, parser, ParseUntil::kHeaderDone);
  while (!ec && !parser.is_done()) {
    char piece[64];
    parser.get().body().data = piece;
    parser.get().body().size = sizeof piece;
    ec = pair.Read(buffer, parser, ParseUntil::kProgress);
    if (ec == http::error::need_buffer) ec = {};
    body.append(piece, sizeof piece - parser.get().body().size);
  }
  return {ec, body};
}

TEST(ReadHttp, RefusesBareLfInFramingAndKeepsItInBodies) {
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

TEST(ReadHttp, EndsOfStreamAsBeastReportsThem) {
  {  // nothing at all
    Pair pair;
    pair.Send("");
    beast::flat_buffer buffer;
    http::request_parser<http::empty_body> parser;
    EXPECT_EQ(pair.Read(buffer, parser, ParseUntil::kHeaderDone), http::error::end_of_stream);
  }
  {  // a header cut short
    Pair pair;
    pair.Send("GET / HTTP/1.1\r\nHo");
    beast::flat_buffer buffer;
    http::request_parser<http::empty_body> parser;
    EXPECT_EQ(pair.Read(buffer, parser, ParseUntil::kHeaderDone), http::error::partial_message);
  }
  {  // a response without a length ends with the connection, whole
    Pair pair;
    pair.Send("HTTP/1.1 200 OK\r\n\r\nall of it");
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    EXPECT_FALSE(pair.Read(buffer, parser, ParseUntil::kMessageDone));
    EXPECT_TRUE(parser.is_done());
    EXPECT_EQ(parser.get().body(), "all of it");
  }
}

// A request header read in two socket reads: `first`, then `second` once the reader holds
// the part of `first` the parser left (checked) and waits on the socket again. The read's
// error.
beast::error_code ReadInTwo(std::string_view first, std::string_view second,
                            http::request_parser<http::empty_body>& parser) {
  Pair pair;
  beast::flat_buffer buffer;
  asio::write(pair.peer, asio::buffer(first));
  asio::co_spawn(
      pair.io,
      [&]() -> asio::awaitable<void> {
        for (int turns = 0; buffer.size() == 0 && turns < 10000; ++turns) co_await asio::post(pair.io, asio::use_awaitable);
        EXPECT_GT(buffer.size(), 0u) << "the reader did not keep part of " << first;
        co_await asio::async_write(pair.peer, asio::buffer(second), asio::use_awaitable);
        pair.peer.shutdown(tcp::socket::shutdown_send);  // a waiting reader sees EOF, not a hang
      },
      asio::detached);
  return pair.Read(buffer, parser, ParseUntil::kHeaderDone);
}

TEST(ReadHttp, AHeaderInPiecesIsReadWholeAndAFullBufferOverflows) {
  // Beast takes the start line at once; the start of a field stays in the buffer.
  http::request_parser<http::empty_body> parser;
  EXPECT_FALSE(ReadInTwo("GET /a HTTP/1.1\r\nHo", "st: h\r\n\r\n", parser));
  EXPECT_EQ(parser.get().target(), "/a");

  Pair pair;
  beast::flat_buffer small(64);  // max_size: a header that does not fit overflows it
  http::request_parser<http::empty_body> big;
  asio::write(pair.peer, asio::buffer("GET /" + std::string(100, 'b') + " HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(pair.Read(small, big, ParseUntil::kHeaderDone), http::error::buffer_overflow);
}

TEST(ReadHttp, ALineEndingSplitAcrossReadsIsCheckedWhereItJoins) {
  // Only the new bytes are scanned, but a CR at the end of the first read counts.
  for (const auto& [first, second, error] : {
           std::tuple<std::string_view, std::string_view, beast::error_code>{"GET / HTTP/1.1\r\nHost: a\r", "\n\r\n", {}},
           {"GET / HTTP/1.1\r\nHost: a\r", "\nX: 1\n\r\n", http::error::bad_line_ending},
           {"GET / HTTP/1.1\r\nHost: a", "\nX: 1\r\n", http::error::bad_line_ending}}) {
    http::request_parser<http::empty_body> parser;
    EXPECT_EQ(ReadInTwo(first, second, parser), error) << first << second;
  }
}

TEST(ReadHttp, TheTimeoutBoundsTheWholeReadNotEachSocketRead) {
  Pair pair;
  // A header a byte every 10 ms (at most 100): each socket read is quick, the whole is not.
  asio::co_spawn(
      pair.io,
      [&]() -> asio::awaitable<void> {
        asio::steady_timer timer(pair.io);
        for (int i = 0; i < 100; ++i) {
          boost::system::error_code ec;
          co_await asio::async_write(pair.peer, asio::buffer("x", 1), asio::redirect_error(asio::use_awaitable, ec));
          if (ec) co_return;  // the reader gave up and closed
          timer.expires_after(std::chrono::milliseconds(10));
          co_await timer.async_wait(asio::use_awaitable);
        }
      },
      asio::detached);
  beast::flat_buffer buffer;
  http::request_parser<http::empty_body> parser;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(pair.Read(buffer, parser, ParseUntil::kHeaderDone, std::chrono::milliseconds(100)), beast::error::timeout);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, std::chrono::milliseconds(100));
  EXPECT_LT(took, std::chrono::milliseconds(900));  // the trickle lasts a second
}

}  // namespace
}  // namespace meshplug::net
