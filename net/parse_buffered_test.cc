#include "net/parse_buffered.h"

#include <gtest/gtest.h>

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <string_view>

namespace meshplug::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

void Fill(beast::flat_buffer& buffer, std::string_view bytes) {
  buffer.commit(asio::buffer_copy(buffer.prepare(bytes.size()), asio::buffer(bytes)));
}

TEST(ParseBuffered, AWholeHeaderNeedsNoRead) {
  beast::flat_buffer buffer;
  Fill(buffer, "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b");  // and the start of the next
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
  Fill(buffer, "GET /a HTTP/1.1\r\nHost:");
  EXPECT_FALSE(ParseBuffered(parser, buffer, ParseUntil::kHeaderDone, ec));
  EXPECT_FALSE(ec);  // need_more is not an error to report
  EXPECT_EQ(beast::buffers_to_string(buffer.data()), "Host:");  // kept for the read that completes it
  EXPECT_FALSE(parser.is_header_done());
}

TEST(ParseBuffered, AMalformedHeaderIsItsError) {
  beast::flat_buffer buffer;
  Fill(buffer, "GET /a HTTP/9.9\r\n\r\n");
  http::request_parser<http::empty_body> parser;
  beast::error_code ec;
  EXPECT_TRUE(ParseBuffered(parser, buffer, ParseUntil::kHeaderDone, ec));
  EXPECT_EQ(ec, http::error::bad_version);
}

TEST(ParseBuffered, ABufferedBodyIsReadPieceByPiece) {
  beast::flat_buffer buffer;
  Fill(buffer, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
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

}  // namespace
}  // namespace meshplug::net
