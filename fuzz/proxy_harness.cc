#include "fuzz/proxy_harness.h"

#include <sys/socket.h>
#include <unistd.h>

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <algorithm>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http.hpp>
#include <chrono>

#include "agent/chains/script_runtime.h"
#include "agent/proxy/http_proxy.h"
#include "agent/testing/test_support.h"
#include "net/upstream_pool.h"

namespace meshplug::fuzz {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using namespace std::chrono_literals;

constexpr auto kHangAfter = 3s;

agent::proxy::Limits SmallLimits() {
  agent::proxy::Limits limits;
  limits.max_header_bytes = 4096;
  limits.max_header_count = 32;
  limits.max_buffered_body_bytes = 8192;
  limits.header_read_timeout = 300ms;
  limits.downstream_idle_timeout = 300ms;
  limits.connect_timeout = 300ms;
  limits.request_timeout = 300ms;
  limits.upstream_idle_timeout = 300ms;
  return limits;
}

plugins::lua::LuaLimits SmallLuaLimits() {
  return plugins::lua::LuaLimits{.instructions_per_call = 200'000,
                                 .time_per_call = 50ms,
                                 .memory_bytes = 4 << 20,
                                 .http_calls_per_call = 2,
                                 .http_call_max_timeout = 200ms,
                                 .http_call_max_response_body = 64 << 10};
}

// Answers each read with `response`; closes with a reset (no TIME_WAIT piles up over
// millions of inputs) when the agent closes, or after answering once when `close_after`.
asio::awaitable<void> Answer(tcp::socket socket, std::string response, bool close_after) {
  socket.set_option(asio::socket_base::linger(true, 0));
  char buffer[4096];
  error_code ec;
  for (;;) {
    co_await socket.async_read_some(asio::buffer(buffer), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    co_await asio::async_write(socket, asio::buffer(response), asio::redirect_error(asio::use_awaitable, ec));
    if (ec || close_after) co_return;
  }
}

asio::awaitable<void> Upstream(tcp::acceptor& acceptor, std::string response, bool close_after) {
  for (;;) {
    error_code ec;
    tcp::socket socket = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    asio::co_spawn(acceptor.get_executor(), Answer(std::move(socket), response, close_after), asio::detached);
  }
}

// Sends `request`, half-closes, and reads until the agent closes.
asio::awaitable<void> Client(asio::local::stream_protocol::socket& socket, std::string_view request,
                             std::string& received, bool& done) {
  error_code ec;
  co_await asio::async_write(socket, asio::buffer(request), asio::redirect_error(asio::use_awaitable, ec));
  socket.shutdown(asio::socket_base::shutdown_send, ec);
  char buffer[4096];
  for (;;) {
    size_t n = co_await socket.async_read_some(asio::buffer(buffer), asio::redirect_error(asio::use_awaitable, ec));
    received.append(buffer, n);
    if (ec) break;
  }
  done = true;
}

}  // namespace

ProxyRig::ProxyRig()
    : scripts_(agent::chains::MakeScriptRuntime(SmallLuaLimits(), 64 << 20)),
      builder_(std::make_unique<agent::chains::ChainSetBuilder>(builtins_, scripts_.get(), state_, SmallLimits())) {
  asio::io_context ioc;
  tcp::acceptor acceptor(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  upstream_port_ = acceptor.local_endpoint().port();
  upstream_fd_ = acceptor.release();
}

v1::Snapshot ProxyRig::Snapshot(std::string_view script) const {
  v1::Snapshot s = agent::testing::BaseSnapshot("fuzz");
  agent::testing::AddService(s, "web.shop", {upstream_port_});
  agent::testing::AddService(s, "app.shop", {upstream_port_}, /*inbound=*/true);
  if (script.empty()) return s;
  v1::PluginScript* plugin = s.add_scripts();
  plugin->set_name("fuzz-script@1");
  plugin->set_plugin("fuzz-script");
  plugin->set_source(std::string(script));
  for (auto* chain : {s.mutable_chains()->mutable_outbound_http(), s.mutable_chains()->mutable_inbound_http()}) {
    v1::ChainModule* m = chain->Add();
    m->set_name("fuzz-script");
    m->set_priority(150);
    m->set_script("fuzz-script@1");
    std::rotate(chain->begin(), chain->end() - 1, chain->end());
  }
  return s;
}

absl::StatusOr<agent::chains::BuiltChainSet> ProxyRig::Build(v1::Snapshot snapshot,
                                                             const agent::chains::ChainSet* previous) const {
  return builder_->Build(std::move(snapshot), previous);
}

std::string ProxyRig::Run(std::shared_ptr<const agent::chains::ChainSet> chains, const Exchange& exchange) {
  asio::io_context ioc;
  tcp::acceptor acceptor(ioc);
  acceptor.assign(tcp::v4(), ::dup(upstream_fd_));
  asio::co_spawn(ioc, Upstream(acceptor, exchange.response, exchange.upstream_closes), asio::detached);

  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) Finding("proxy_harness", "socketpair failed");
  asio::local::stream_protocol::socket client(ioc);
  client.assign(asio::local::stream_protocol(), fds[0]);
  tcp::socket server(ioc);
  server.assign(tcp::v4(), fds[1]);

  agent::chains::ActiveChainSet active;
  active.Swap(std::move(chains));
  net::UpstreamPool pool(ioc.get_executor());
  std::atomic<bool> draining{false};
  std::atomic<int64_t> in_flight{0};
  agent::proxy::ProxyEnv env{&active, &pool, &stats_, exchange.inbound, &draining, &in_flight};
  bool served = false, client_done = false;
  std::string received;
  asio::co_spawn(ioc, agent::proxy::ServeHttpConnection(std::move(server), env),
                 [&](std::exception_ptr) { served = true; });
  asio::co_spawn(ioc, Client(client, exchange.request, received, client_done), asio::detached);

  const auto deadline = std::chrono::steady_clock::now() + kHangAfter;
  while (!(served && client_done) && std::chrono::steady_clock::now() < deadline) {
    ioc.run_one_until(deadline);
  }
  if (!(served && client_done)) Finding("proxy_harness", "the connection was still open 3 s after the client finished");
  if (in_flight.load() != 0) Finding("proxy_harness", "a request is still counted in flight after its connection ended");
  return received;
}

void CheckResponses(const char* target, std::string_view bytes) {
  while (!bytes.empty()) {
    http::response_parser<http::string_body> parser;
    parser.eager(true);
    parser.body_limit(~uint64_t{0});
    parser.header_limit(1 << 20);
    error_code ec;
    size_t used = parser.put(asio::buffer(bytes.data(), bytes.size()), ec);
    while (!ec && used > 0 && !parser.is_done()) {
      bytes.remove_prefix(used);
      used = parser.put(asio::buffer(bytes.data(), bytes.size()), ec);
    }
    if (ec == http::error::need_more || (!ec && !parser.is_done())) return;  // cut short
    if (ec) Finding(target, "the agent sent a malformed response", ec.message() + "\n" + std::string(bytes.substr(0, 512)));
    bytes.remove_prefix(used);
  }
}

}  // namespace meshplug::fuzz
