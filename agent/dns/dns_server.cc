#include "agent/dns/dns_server.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <sstream>

#include "agent/dns/dns_message.h"
#include "common/strings.h"

namespace meshplug::agent::dns {
namespace {

namespace asio = boost::asio;
using asio::ip::udp;

constexpr size_t kMaxRelays = 256;  // queries relayed at once; more get SERVFAIL
constexpr auto kRelayTimeout = std::chrono::seconds(2);
constexpr size_t kMaxPacket = 65535;

}  // namespace

struct DnsServer::State {
  explicit State(asio::io_context& context) : socket(context) {}
  udp::socket socket;
  Resolver resolve;
  std::optional<udp::endpoint> upstream;
  Stats* stats = nullptr;
  size_t relays = 0;  // on the context's thread

  void Count(const char* result) {
    if (stats) stats->Count("meshplug_agent_dns_queries_total", {{"result", result}});
  }

  // One query relayed upstream and its answer sent back, within kRelayTimeout.
  static asio::awaitable<void> Relay(std::shared_ptr<State> self, std::string query, udp::endpoint client) {
    struct Slot {  // the relay's place, given back however the relay ends
      State& state;
      ~Slot() { --state.relays; }
    } slot{*self};
    auto executor = co_await asio::this_coro::executor;
    boost::system::error_code ec;
    udp::socket out(executor);
    out.open(self->upstream->protocol(), ec);
    if (ec) {
      self->Count("upstream failed");
      const std::string failed = Respond(query, kServFail);
      co_await self->socket.async_send_to(asio::buffer(failed), client, asio::redirect_error(asio::use_awaitable, ec));
      co_return;
    }
    asio::steady_timer timer(executor, kRelayTimeout);
    timer.async_wait([&out](boost::system::error_code ec) {
      if (!ec) out.cancel();
    });
    co_await out.async_send_to(asio::buffer(query), *self->upstream, asio::redirect_error(asio::use_awaitable, ec));
    std::string reply(kMaxPacket, '\0');  // EDNS answers are larger than 512 bytes
    size_t n = 0;
    udp::endpoint from;
    if (!ec) n = co_await out.async_receive_from(asio::buffer(reply), from, asio::redirect_error(asio::use_awaitable, ec));
    timer.cancel();
    reply.resize(n);
    if (ec || from != *self->upstream) {
      self->Count("upstream failed");
      reply = Respond(query, kServFail);
    } else {
      self->Count("relayed");
    }
    co_await self->socket.async_send_to(asio::buffer(reply), client, asio::redirect_error(asio::use_awaitable, ec));
  }

  static asio::awaitable<void> Serve(std::shared_ptr<State> self) {
    std::string packet(kMaxPacket, '\0');
    while (self->socket.is_open()) {
      udp::endpoint client;
      boost::system::error_code ec;
      const size_t n = co_await self->socket.async_receive_from(asio::buffer(packet), client,
                                                                asio::redirect_error(asio::use_awaitable, ec));
      if (ec == asio::error::operation_aborted) break;
      if (ec) continue;
      const std::string query = packet.substr(0, n);
      const std::optional<Question> q = ParseQuery(query);
      if (!q) {
        self->Count("malformed");
        continue;  // nothing sensible to answer
      }
      const Answer answer = q->klass == kClassIn ? self->resolve(q->name) : Answer{};
      std::string reply;
      if (answer.mesh_name) {
        // A mesh name has an IPv4 address only: AAAA and other types get no records.
        const bool exists = answer.ipv4.has_value();
        reply = Respond(query, exists ? kNoError : kNxDomain,
                        exists && q->type == kTypeA ? answer.ipv4 : std::nullopt);
        self->Count(exists ? "mesh" : "mesh nxdomain");
      } else if (self->upstream && self->relays < kMaxRelays) {
        ++self->relays;
        asio::co_spawn(self->socket.get_executor(), Relay(self, query, client), asio::detached);
        continue;
      } else {
        self->Count("no upstream");
        reply = Respond(query, kServFail);
      }
      co_await self->socket.async_send_to(asio::buffer(reply), client, asio::redirect_error(asio::use_awaitable, ec));
    }
  }
};

absl::StatusOr<std::unique_ptr<DnsServer>> DnsServer::Start(asio::io_context& context, const std::string& address,
                                                            uint16_t port, Resolver resolve,
                                                            std::optional<udp::endpoint> upstream, Stats* stats) {
  boost::system::error_code ec;
  const auto ip = asio::ip::make_address(address, ec);
  if (ec) return absl::InvalidArgumentError(Cat("DNS server address \"", address, "\" is not an IP address"));
  auto state = std::make_shared<State>(context);
  state->socket.open(ip.is_v6() ? udp::v6() : udp::v4(), ec);
  if (!ec) state->socket.bind(udp::endpoint(ip, port), ec);
  if (ec) return absl::UnavailableError(Cat("cannot listen for DNS on ", address, ":", port, ": ", ec.message()));
  state->resolve = std::move(resolve);
  state->upstream = upstream;
  state->stats = stats;
  const uint16_t bound = state->socket.local_endpoint().port();
  asio::co_spawn(context, State::Serve(state), asio::detached);
  return std::unique_ptr<DnsServer>(new DnsServer(std::move(state), bound));
}

DnsServer::~DnsServer() {
  // Closed on its own thread: the serving coroutine ends there.
  asio::post(state_->socket.get_executor(), [state = state_] {
    boost::system::error_code ignored;
    state->socket.close(ignored);
  });
}

std::optional<udp::endpoint> FirstNameserver(const std::string& resolv_conf) {
  std::istringstream in(resolv_conf);
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    std::string key, value;
    words >> key >> value;
    if (key != "nameserver") continue;
    boost::system::error_code ec;
    const auto ip = asio::ip::make_address(value, ec);
    if (!ec) return udp::endpoint(ip, 53);
  }
  return std::nullopt;
}

}  // namespace meshplug::agent::dns
