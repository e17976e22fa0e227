#include "agent/http_message.h"

#include <gtest/gtest.h>

namespace meshplug::agent {
namespace {

http::request_header<> Request(std::initializer_list<std::pair<const char*, const char*>> fields,
                               unsigned version = 11) {
  http::request_header<> req;
  req.version(version);
  for (const auto& [k, v] : fields) req.insert(k, v);
  return req;
}

TEST(HttpMessageTest, UnsafeFraming) {
  EXPECT_EQ(UnsafeFraming(Request({{"Transfer-Encoding", "chunked"}})), "");
  EXPECT_EQ(UnsafeFraming(Request({{"Content-Length", "3"}})), "");
  EXPECT_NE(UnsafeFraming(Request({{"Transfer-Encoding", "chunked, gzip"}})), "");
  EXPECT_NE(UnsafeFraming(Request({{"Transfer-Encoding", "chunked"}}, 10)), "");
  EXPECT_NE(UnsafeFraming(Request({{"Transfer-Encoding", "gzip"}, {"Transfer-Encoding", "chunked"}})),
            "");
}

TEST(HttpMessageTest, RemovesHopByHopAndConnectionNamedFields) {
  auto req = Request({{"Connection", "x-a, keep-alive"}, {"x-a", "1"}, {"Keep-Alive", "5"},
                      {"TE", "trailers"}, {"Upgrade", "h2c"}, {"x-b", "2"},
                      {"Content-Length", "1"}});
  RemoveHopByHop(req);
  EXPECT_EQ(req.count("x-a"), 0u);
  EXPECT_EQ(req.count(http::field::keep_alive), 0u);
  EXPECT_EQ(req.count(http::field::te), 0u);
  EXPECT_EQ(req.count(http::field::upgrade), 0u);
  EXPECT_EQ(req.count(http::field::connection), 0u);
  EXPECT_EQ(req["x-b"], "2");
  EXPECT_EQ(req[http::field::content_length], "1");
}

TEST(HttpMessageTest, AbsoluteFormBecomesOriginForm) {
  auto req = Request({{"Host", "old"}});
  req.target("http://web.shop:8080?q=1");
  ASSERT_TRUE(NormalizeTarget(req));
  EXPECT_EQ(req.target(), "/?q=1");
  EXPECT_EQ(req[http::field::host], "web.shop:8080");
  req.target("http://user@evil/");
  EXPECT_FALSE(NormalizeTarget(req));
  req.target("/plain");
  EXPECT_TRUE(NormalizeTarget(req));
  EXPECT_EQ(req.target(), "/plain");
}

TEST(HttpMessageTest, KeepAliveFollowsVersionAndConnection) {
  EXPECT_TRUE(KeepAlive(Request({})));
  EXPECT_FALSE(KeepAlive(Request({{"Connection", "close"}})));
  EXPECT_FALSE(KeepAlive(Request({}, 10)));
  EXPECT_TRUE(KeepAlive(Request({{"Connection", "Keep-Alive"}}, 10)));
}

}  // namespace
}  // namespace meshplug::agent
