#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <thread>

#include "agent/dns/dns_message.h"
#include "agent/dns/dns_server.h"

namespace meshplug::agent::dns {
namespace {

namespace asio = boost::asio;
using asio::ip::udp;

std::string Query(const std::string& name, uint16_t type, uint16_t id = 0x1234) {
  std::string q = {static_cast<char>(id >> 8), static_cast<char>(id & 0xff), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0};
  size_t at = 0;
  while (at <= name.size()) {
    size_t dot = name.find('.', at);
    if (dot == std::string::npos) dot = name.size();
    q.push_back(static_cast<char>(dot - at));
    q += name.substr(at, dot - at);
    at = dot + 1;
  }
  q.push_back(0);
  q += {static_cast<char>(type >> 8), static_cast<char>(type & 0xff), 0, 1};
  return q;
}

unsigned Byte(const std::string& s, size_t i) { return static_cast<uint8_t>(s[i]); }

TEST(DnsMessage, ParsesOneQuestionAndAnswersItWithAnARecord) {
  const std::string q = Query("Web.Demo", kTypeA);
  auto parsed = ParseQuery(q);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->name, "web.demo");
  EXPECT_EQ(parsed->type, kTypeA);
  const std::string r = Respond(q, kNoError, 0x0a600001);
  EXPECT_EQ(r.substr(0, 2), q.substr(0, 2));        // the id
  EXPECT_EQ(Byte(r, 2) & 0x80, 0x80u);              // a response
  EXPECT_EQ(Byte(r, 3) & 0x0f, 0u);                 // NOERROR
  EXPECT_EQ(Byte(r, 7), 1u);                        // one answer
  EXPECT_EQ(r.substr(r.size() - 4), std::string("\x0a\x60\x00\x01", 4));
  EXPECT_EQ(Byte(Respond(q, kNxDomain), 3) & 0x0f, 3u);
}

TEST(DnsMessage, AnythingButOneStandardQuestionIsNotAQuery) {
  std::string q = Query("web.demo", kTypeA);
  EXPECT_FALSE(ParseQuery(q.substr(0, 14)));  // cut short
  std::string response = q;
  response[2] = static_cast<char>(0x81);
  EXPECT_FALSE(ParseQuery(response));
  std::string two = q;
  two[5] = 2;
  EXPECT_FALSE(ParseQuery(two));
  std::string pointer = q.substr(0, 12) + std::string("\xc0\x0c\x00\x01\x00\x01", 6);
  EXPECT_FALSE(ParseQuery(pointer));
  EXPECT_FALSE(ParseQuery(std::string(600, 'x')));
}

class DnsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // An "upstream" that knows example.com only.
    upstream_ = *DnsServer::Start(
        context_, "127.0.0.1", 0,
        [](const std::string& name) { return Answer{true, name == "example.com" ? std::optional<uint32_t>(0x5db8d822) : std::nullopt}; },
        std::nullopt, nullptr);
    mesh_ = *DnsServer::Start(
        context_, "127.0.0.1", 0,
        [](const std::string& name) -> Answer {
          if (name == "web.demo" || name == "web.demo.svc.cluster.local") return {true, 0x0a600001};
          if (name.ends_with(".svc.cluster.local")) return {true, std::nullopt};
          return {};
        },
        udp::endpoint(asio::ip::make_address("127.0.0.1"), upstream_->port()), nullptr);
    thread_ = std::thread([this] { context_.run(); });
  }
  void TearDown() override {
    mesh_.reset();
    upstream_.reset();
    guard_.reset();
    context_.stop();
    thread_.join();
  }

  // The reply to `query` from the mesh server ("" if none within 2 s). Plain sockets: a
  // blocking Asio receive would ignore SO_RCVTIMEO and wait for ever.
  std::string Ask(const std::string& query) {
    const int fd = socket(AF_INET, SOCK_DGRAM, 0);
    timeval tv{2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(mesh_->port());
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sendto(fd, query.data(), query.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
    char reply[512];
    const ssize_t n = recv(fd, reply, sizeof reply, 0);
    close(fd);
    return n > 0 ? std::string(reply, static_cast<size_t>(n)) : "";
  }

  asio::io_context context_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_ = asio::make_work_guard(context_);
  std::unique_ptr<DnsServer> upstream_, mesh_;
  std::thread thread_;
};

TEST_F(DnsServerTest, MeshNamesAreAnsweredHereAndOthersUpstream) {
  std::string r = Ask(Query("web.demo", kTypeA));
  ASSERT_GE(r.size(), 16u);
  EXPECT_EQ(r.substr(r.size() - 4), std::string("\x0a\x60\x00\x01", 4));
  r = Ask(Query("web.demo", kTypeAaaa));  // no IPv6 address: no records, but the name exists
  ASSERT_GE(r.size(), 8u);
  EXPECT_EQ(Byte(r, 3) & 0x0f, 0u);
  EXPECT_EQ(Byte(r, 7), 0u);
  r = Ask(Query("ghost.demo.svc.cluster.local", kTypeA));
  ASSERT_GE(r.size(), 4u);
  EXPECT_EQ(Byte(r, 3) & 0x0f, 3u);  // NXDOMAIN
  r = Ask(Query("example.com", kTypeA, 0x4321));  // relayed
  ASSERT_GE(r.size(), 16u);
  EXPECT_EQ(r.substr(0, 2), "\x43\x21");
  EXPECT_EQ(r.substr(r.size() - 4), std::string("\x5d\xb8\xd8\x22", 4));
  EXPECT_EQ(Ask(std::string("\x00\x01garbage", 9)), "");  // nothing sensible to answer
  EXPECT_NE(Ask(Query("web.demo", kTypeA)), "");           // and the server still serves
}

TEST(DnsServer, TheFirstNameserverOfResolvConf) {
  auto ns = FirstNameserver("# comment\nsearch example.com\nnameserver 10.0.0.53\nnameserver 8.8.8.8\n");
  ASSERT_TRUE(ns);
  EXPECT_EQ(ns->address().to_string(), "10.0.0.53");
  EXPECT_EQ(ns->port(), 53);
  EXPECT_FALSE(FirstNameserver("search x\n"));
}

}  // namespace
}  // namespace meshplug::agent::dns
