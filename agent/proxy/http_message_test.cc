#include "agent/proxy/http_message.h"

#include <gtest/gtest.h>

#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/write.hpp>
#include <sstream>

#include "agent/proxy/body.h"

namespace meshplug::agent::proxy {
namespace {

http::request_header<> Request(std::initializer_list<std::pair<const char*, const char*>> fields,
                               unsigned version = 11) {
  http::request_header<> req;
  req.version(version);
  for (const auto& [k, v] : fields) req.insert(k, v);
  return req;
}

// 0 when the framing is accepted, else the rejection's status.
unsigned FramingStatus(const http::request_header<>& req) {
  std::optional<Rejection> r = CheckRequestFraming(req);
  return r ? r->status : 0;
}

TEST(HttpMessageTest, RequestFraming) {
  EXPECT_EQ(FramingStatus(Request({{"Transfer-Encoding", "chunked"}})), 0u);
  EXPECT_EQ(FramingStatus(Request({{"Transfer-Encoding", "Chunked"}})), 0u);
  EXPECT_EQ(FramingStatus(Request({{"Content-Length", "3"}})), 0u);
  // Not ending in chunked: the length cannot be determined (RFC 9112 §6.3).
  EXPECT_EQ(FramingStatus(Request({{"Transfer-Encoding", "chunked, gzip"}})), 400u);
  EXPECT_EQ(FramingStatus(Request({{"Transfer-Encoding", "gzip"}})), 400u);
  EXPECT_EQ(FramingStatus(Request({{"Transfer-Encoding", ""}})), 400u);
  EXPECT_EQ(FramingStatus(Request({{"Transfer-Encoding", "chunked"}}, 10)), 400u);
  EXPECT_EQ(FramingStatus(Request({{"Transfer-Encoding", "chunked"}, {"Content-Length", "3"}})),
            400u);
  // Codings the agent does not implement (RFC 9112 §6.1), however they are spread.
  EXPECT_EQ(FramingStatus(Request({{"Transfer-Encoding", "gzip, chunked"}})), 501u);
  EXPECT_EQ(FramingStatus(Request({{"Transfer-Encoding", "chunked, chunked"}})), 501u);
  EXPECT_EQ(FramingStatus(Request({{"Transfer-Encoding", "gzip"}, {"Transfer-Encoding", "chunked"}})),
            501u);
}

TEST(HttpMessageTest, ResponseFramingIsForwardableOnlyWhenExactlyChunked) {
  auto response = [](std::initializer_list<std::pair<const char*, const char*>> fields) {
    http::response_header<> res;
    for (const auto& [k, v] : fields) res.insert(k, v);
    return res;
  };
  EXPECT_TRUE(ForwardableResponseFraming(response({})));
  EXPECT_TRUE(ForwardableResponseFraming(response({{"Transfer-Encoding", "chunked"}})));
  EXPECT_FALSE(ForwardableResponseFraming(response({{"Transfer-Encoding", "gzip, chunked"}})));
  EXPECT_FALSE(ForwardableResponseFraming(response({{"Transfer-Encoding", "chunked, gzip"}})));
  EXPECT_FALSE(ForwardableResponseFraming(response({{"Transfer-Encoding", ""}})));
  EXPECT_TRUE(ForwardableResponseFraming(response({{"transfer-encoding", "Chunked"}})));
  EXPECT_FALSE(ForwardableResponseFraming(
      response({{"Transfer-Encoding", "chunked"}, {"Transfer-Encoding", "chunked"}})));
}

TEST(HttpMessageTest, RemovesHopByHopAndConnectionNamedFields) {
  auto req = Request({{"Connection", "x-a, keep-alive"}, {"x-a", "1"}, {"Keep-Alive", "5"},
                      {"TE", "trailers"}, {"Upgrade", "h2c"}, {"x-b", "2"},
                      {"Content-Length", "1"}});
  RemoveConnectionOptions(req);  // as the request arrives
  RemoveHopByHop(req);           // as it is sent on
  EXPECT_EQ(req.count("x-a"), 0u);
  EXPECT_EQ(req.count(http::field::keep_alive), 0u);
  EXPECT_EQ(req.count(http::field::te), 0u);
  EXPECT_EQ(req.count(http::field::upgrade), 0u);
  EXPECT_EQ(req.count(http::field::connection), 0u);
  EXPECT_EQ(req["x-b"], "2");
  EXPECT_EQ(req[http::field::content_length], "1");
}

TEST(HttpMessageTest, ConnectionNeverRemovesHostNorWhatIsAddedAfterArrival) {
  auto req = Request({{"Host", "web.shop"}, {"Connection", "close, Host, x-token"}, {"x-token", "client's"}});
  RemoveConnectionOptions(req);
  EXPECT_EQ(req[http::field::host], "web.shop");
  EXPECT_EQ(req.count("x-token"), 0u);
  req.set("x-token", "set by a plugin");  // what the chain adds stays, whatever Connection said
  RemoveHopByHop(req);
  EXPECT_EQ(req["x-token"], "set by a plugin");
  EXPECT_EQ(req.count(http::field::connection), 0u);
}

// Every Connection field counts, and one that names Connection itself removes it too.
TEST(HttpMessageTest, ConnectionMayNameItselfAndComeTwice) {
  auto req = Request({{"Connection", "X-A, connection"}, {"x-a", "1"}, {"Connection", "x-b"}, {"X-B", "2"},
                      {"x-c", "3"}});
  RemoveConnectionOptions(req);
  EXPECT_EQ(req.count("x-a"), 0u);
  EXPECT_EQ(req.count("x-b"), 0u);
  EXPECT_EQ(req.count(http::field::connection), 0u);
  EXPECT_EQ(req["x-c"], "3");
}

TEST(HttpMessageTest, HostIsNormalized) {
  auto req = Request({{"Host", "HTTPBIN.Httpbin.:14001"}});
  req.target("/get");
  ASSERT_FALSE(NormalizeTarget(req));
  EXPECT_EQ(req[http::field::host], "httpbin.httpbin:14001");
}

TEST(HttpMessageTest, HostMustBeOneAuthority) {
  for (std::string_view good : {"web.shop", "Web.Shop.:8080", "10.0.0.1:80", "[fe80::1]:80", "a-b_c~d%41"}) {
    EXPECT_FALSE(CheckHost(Request({{"Host", good.data()}}))) << good;
  }
  for (std::string_view bad : {"web shop", "web.shop/x", "a@b", "a\"b", "a?b", "a#b", "caf\xc3\xa9", "a\x7f"}) {
    auto rejected = CheckHost(Request({{"Host", bad.data()}}));
    ASSERT_TRUE(rejected) << bad;
    EXPECT_EQ(rejected->status, 400u);
    EXPECT_EQ(rejected->reason, "invalid Host") << bad;
  }
  auto two = CheckHost(Request({{"Host", "a"}, {"Host", "b"}}));
  ASSERT_TRUE(two);
  EXPECT_EQ(two->reason, "more than one Host field");
  EXPECT_EQ(CheckHost(Request({}))->reason, "missing Host");
  EXPECT_FALSE(CheckHost(Request({}, 10)));  // HTTP/1.0 may leave it out
}

// A Host already in normal form stays where the client put it; only a changed one is
// set again (and goes last).
TEST(HttpMessageTest, NormalHostKeepsItsPlace) {
  auto req = Request({{"Host", "web.shop"}, {"Accept", "*/*"}});
  req.method(http::verb::get);
  req.target("/a/../b");
  ASSERT_FALSE(NormalizeTarget(req));
  EXPECT_EQ(req.target(), "/b");
  EXPECT_EQ(HeaderBytes(req), "GET /b HTTP/1.1\r\nHost: web.shop\r\nAccept: */*\r\n\r\n");
  req.set(http::field::host, "Web.Shop");
  req.set(http::field::accept, "*/*");  // now after Host
  ASSERT_FALSE(NormalizeTarget(req));
  EXPECT_EQ(HeaderBytes(req), "GET /b HTTP/1.1\r\nAccept: */*\r\nHost: web.shop\r\n\r\n");
}

TEST(HttpMessageTest, AbsoluteFormBecomesOriginForm) {
  auto req = Request({{"Host", "old"}});
  req.target("http://web.shop:8080?q=1");
  ASSERT_FALSE(NormalizeTarget(req));
  EXPECT_EQ(req.target(), "/?q=1");
  EXPECT_EQ(req[http::field::host], "web.shop:8080");
  req.target("http://web.shop/a/b?x=1");  // the path is a view into the old target
  ASSERT_FALSE(NormalizeTarget(req));
  EXPECT_EQ(req.target(), "/a/b?x=1");
  req.target("http://web.shop/a/./b/../c");
  ASSERT_FALSE(NormalizeTarget(req));
  EXPECT_EQ(req.target(), "/a/c");
  req.target("http://user@evil/");
  EXPECT_TRUE(NormalizeTarget(req));
  req.target("/plain");
  EXPECT_FALSE(NormalizeTarget(req));
  EXPECT_EQ(req.target(), "/plain");
}

TEST(HttpMessageTest, KeepAliveFollowsVersionAndConnection) {
  EXPECT_TRUE(KeepAlive(Request({})));
  EXPECT_FALSE(KeepAlive(Request({{"Connection", "close"}})));
  EXPECT_FALSE(KeepAlive(Request({}, 10)));
  EXPECT_TRUE(KeepAlive(Request({{"Connection", "Keep-Alive"}}, 10)));
}

// What Beast's own serializer writes for `header`.
template <bool isRequest>
std::string BeastHeaderBytes(const http::header<isRequest>& header) {
  http::message<isRequest, http::empty_body> message(header);
  std::ostringstream out;
  out << message;
  return out.str();
}

TEST(HttpMessageTest, HeaderBytesAreBeastsBytes) {
  http::request_header<> req = Request({{"Host", "web.demo"}, {"X-Odd", "a  b\tc"}, {"x-lower", ""}});
  req.method(http::verb::get);
  req.target("/path?q=1");
  EXPECT_EQ(HeaderBytes(req), BeastHeaderBytes(req));
  EXPECT_EQ(HeaderBytes(req), "GET /path?q=1 HTTP/1.1\r\nHost: web.demo\r\nX-Odd: a  b\tc\r\nx-lower: \r\n\r\n");
  req.method_string("PURGE");  // a method Beast does not know
  req.version(10);
  EXPECT_EQ(HeaderBytes(req), BeastHeaderBytes(req));

  http::response_header<> res;
  res.version(11);
  res.result(http::status::not_found);
  res.set(http::field::content_length, "0");
  EXPECT_EQ(HeaderBytes(res), BeastHeaderBytes(res));
  EXPECT_EQ(HeaderBytes(res), "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
  res.result(599);  // no standard reason
  EXPECT_EQ(HeaderBytes(res), BeastHeaderBytes(res));
  res.reason("Custom Reason");
  EXPECT_EQ(HeaderBytes(res), BeastHeaderBytes(res));
}

// What OutgoingHeaderBytes stands for: a copy changed field by field, then written.
template <bool isRequest>
std::string CopiedOutgoingBytes(http::header<isRequest> header, const OutgoingFields& out) {
  if (out.drop_expect) header.erase(http::field::expect);
  RemoveHopByHop(header);
  SetFraming(header, out.framing, out.length);
  header.version(11);
  SetKeepAlive(header, out.keep_alive);
  if (!out.upgrade.empty()) {
    header.set(http::field::connection, "Upgrade");
    header.set(http::field::upgrade, out.upgrade);
  }
  return HeaderBytes(header);
}

TEST(HttpMessageTest, OutgoingHeaderBytesEqualACopyChangedFieldByField) {
  http::request_header<> req = Request({{"Host", "web.demo"}, {"connection", "keep-alive, x-hop"}, {"Keep-Alive", "5"},
                                        {"TE", "trailers"}, {"Trailer", "x-sum"}, {"Transfer-Encoding", "chunked"},
                                        {"Upgrade", "websocket"}, {"Expect", "100-continue"}, {"Content-Length", "12"},
                                        {"Proxy-Connection", "keep-alive"}, {"X-Custom", "1"}},
                                       10);
  req.method(http::verb::post);
  req.target("/upload");
  http::response_header<> res;
  res.version(10);
  res.result(http::status::ok);
  for (const auto& [k, v] : {std::pair{"Content-Length", "3"}, {"Connection", "close"}, {"Transfer-Encoding", "chunked"},
                             {"Server", "up"}, {"Trailer", "x"}}) {
    res.insert(k, v);
  }
  for (Framing framing : {Framing::kNone, Framing::kLength, Framing::kChunked, Framing::kClose}) {
    for (bool keep_alive : {true, false}) {
      for (std::string_view upgrade : {"", "websocket"}) {
        for (bool drop_expect : {false, true}) {
          const OutgoingFields out{framing, uint64_t{42}, keep_alive, upgrade, drop_expect};
          SCOPED_TRACE(testing::Message() << "framing " << static_cast<int>(framing) << " keep_alive " << keep_alive
                                          << " upgrade " << upgrade << " drop_expect " << drop_expect);
          EXPECT_EQ(OutgoingHeaderBytes(req, out), CopiedOutgoingBytes(req, out));
          if (upgrade.empty() && !drop_expect) {
            EXPECT_EQ(OutgoingHeaderBytes(res, out), CopiedOutgoingBytes(res, out));
          }
        }
      }
    }
  }
  EXPECT_EQ(OutgoingHeaderBytes(req, OutgoingFields{Framing::kLength, uint64_t{12}, true, {}, true}),
            "POST /upload HTTP/1.1\r\nHost: web.demo\r\nX-Custom: 1\r\nContent-Length: 12\r\n\r\n");
}

}  // namespace
}  // namespace meshplug::agent::proxy
