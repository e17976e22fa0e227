#include "agent/testing/test_support.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/chunk_encode.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <algorithm>
#include <array>
#include <cctype>
#include <sstream>

#include "common/chain_info.h"
#include "common/strings.h"

namespace meshplug::agent::testing {
namespace {

using tcp = asio::ip::tcp;
auto Ec(boost::system::error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

tcp::acceptor LocalAcceptor(asio::io_context& context) {
  return tcp::acceptor(context, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
}

}  // namespace

TestUpstream::TestUpstream(std::string name)
    : name_(std::move(name)), acceptor_(LocalAcceptor(context_)) {
  port_ = acceptor_.local_endpoint().port();
  asio::co_spawn(context_, Accept(), asio::detached);
  thread_ = std::thread([this] { context_.run(); });
}

TestUpstream::~TestUpstream() {
  context_.stop();
  thread_.join();
}

void TestUpstream::ReleaseSlow() {
  asio::post(context_, [this] { slow_gate_.cancel(); });
}

std::string TestUpstream::last_request_header() const {
  std::lock_guard lock(mu_);
  return last_request_header_;
}

asio::awaitable<void> TestUpstream::Accept() {
  while (true) {
    boost::system::error_code ec;
    tcp::socket socket = co_await acceptor_.async_accept(Ec(ec));
    if (ec) co_return;
    ++connections_;
    ++open_connections_;
    asio::co_spawn(context_, Serve(std::move(socket)), asio::detached);
  }
}

asio::awaitable<void> TestUpstream::Serve(tcp::socket socket) {
  struct Closed {
    std::atomic<int>& open;
    ~Closed() { --open; }
  } closed{open_connections_};
  // Header and chunks go out as separate writes: without this, Nagle holds each behind
  // the peer's delayed ACK and every response takes tens of milliseconds.
  boost::system::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  while (true) {
    http::request_parser<http::buffer_body> parser;
    parser.body_limit(~uint64_t{0});  // not boost::none: see agent/body.h
    boost::system::error_code ec;
    co_await http::async_read_header(stream, buffer, parser, Ec(ec));
    if (ec) co_return;
    ++requests_;
    const auto& req = parser.get();
    {
      std::ostringstream header;
      header << req.base();
      std::lock_guard lock(mu_);
      last_request_header_ = header.str();
    }
    std::string target(req.target());
    if (target == "/reset") co_return;
    if (target == "/slow") {
      ++slow_waiting_;
      co_await slow_gate_.async_wait(Ec(ec));
      --slow_waiting_;
    }
    http::response<http::empty_body> head{http::status::ok, 11};
    if (target.starts_with("/status/")) head.result(std::stoi(target.substr(8)));
    head.set("x-upstream", name_);
    if (auto it = req.find("x-test"); it != req.end()) head.set("x-test", it->value());
    head.chunked(true);
    http::response_serializer<http::empty_body> sr(head);
    co_await http::async_write_header(stream, sr, Ec(ec));
    if (ec) co_return;
    // Echo streams the request body back as it arrives; other paths drain it.
    char piece[16 * 1024];
    while (!parser.is_done()) {
      parser.get().body().data = piece;
      parser.get().body().size = sizeof piece;
      co_await http::async_read_some(stream, buffer, parser, Ec(ec));
      if (ec == http::error::need_buffer) ec = {};
      if (ec) co_return;
      size_t n = sizeof piece - parser.get().body().size;
      if (target == "/echo" && n > 0) {
        co_await asio::async_write(stream, http::make_chunk(asio::buffer(piece, n)), Ec(ec));
        if (ec) co_return;
      }
    }
    if (target != "/echo") {
      co_await asio::async_write(stream, http::make_chunk(asio::buffer(name_)), Ec(ec));
    }
    co_await asio::async_write(stream, http::make_chunk_last(), Ec(ec));
    if (ec || !req.keep_alive()) co_return;
  }
}

TcpEchoUpstream::TcpEchoUpstream(std::string prefix)
    : prefix_(std::move(prefix)), acceptor_(LocalAcceptor(context_)) {
  port_ = acceptor_.local_endpoint().port();
  asio::co_spawn(context_, Accept(), asio::detached);
  thread_ = std::thread([this] { context_.run(); });
}

TcpEchoUpstream::~TcpEchoUpstream() {
  context_.stop();
  thread_.join();
}

asio::awaitable<void> TcpEchoUpstream::Accept() {
  while (true) {
    boost::system::error_code ec;
    tcp::socket socket = co_await acceptor_.async_accept(Ec(ec));
    if (ec) co_return;
    asio::co_spawn(
        context_,
        [this, socket = std::move(socket)]() mutable -> asio::awaitable<void> {
          std::string received;
          char piece[4096];
          boost::system::error_code ec;
          while (true) {
            size_t n = co_await socket.async_read_some(asio::buffer(piece), Ec(ec));
            if (ec) break;
            received.append(piece, n);
          }
          if (ec != asio::error::eof) co_return;
          std::string reply = prefix_ + received;
          co_await asio::async_write(socket, asio::buffer(reply), Ec(ec));
          socket.shutdown(tcp::socket::shutdown_both, ec);
        },
        asio::detached);
  }
}

RawUpstream::RawUpstream(Handler handler)
    : handler_(std::move(handler)), acceptor_(LocalAcceptor(context_)) {
  port_ = acceptor_.local_endpoint().port();
  asio::co_spawn(context_, Accept(), asio::detached);
  thread_ = std::thread([this] { context_.run(); });
}

RawUpstream::~RawUpstream() {
  context_.stop();
  thread_.join();
}

asio::awaitable<void> RawUpstream::Accept() {
  for (int n = 0;; ++n) {
    boost::system::error_code ec;
    tcp::socket socket = co_await acceptor_.async_accept(Ec(ec));
    if (ec) co_return;
    ++connections_;
    ++open_connections_;
    asio::co_spawn(
        context_,
        [this, n, socket = std::move(socket)]() mutable -> asio::awaitable<void> {
          struct Closed {
            std::atomic<int>& open;
            ~Closed() { --open; }
          } closed{open_connections_};
          co_await handler_(socket, n);
          boost::system::error_code ignored;
          socket.close(ignored);
        },
        asio::detached);
  }
}

asio::awaitable<std::string> ReadRequestHeader(tcp::socket& socket, std::string& pending) {
  while (true) {
    size_t end = pending.find("\r\n\r\n");
    if (end != std::string::npos) {
      std::string header = pending.substr(0, end + 4);
      pending.erase(0, end + 4);
      co_return header;
    }
    char piece[4096];
    boost::system::error_code ec;
    size_t n = co_await socket.async_read_some(asio::buffer(piece), Ec(ec));
    if (ec) co_return std::string();
    pending.append(piece, n);
  }
}

RawUpstream::Handler UpgradeEcho::handler() {
  return [this](tcp::socket& socket, int) -> asio::awaitable<void> {
    std::string pending;
    std::string header = co_await ReadRequestHeader(socket, pending);
    {
      std::lock_guard lock(mu_);
      last_header_ = header;
    }
    std::string lower = header;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    if (lower.find("\r\nupgrade: websocket\r\n") == std::string::npos) {
      co_await WriteAll(socket, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain");
      co_return;
    }
    const bool ok = co_await WriteAll(socket, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
    if (!ok) {
      co_return;
    }
    boost::system::error_code ec;
    char piece[4096];
    while (!ec) pending.append(piece, co_await socket.async_read_some(asio::buffer(piece), Ec(ec)));
    co_await WriteAll(socket, "ws:" + pending);
  };
}

std::string UpgradeEcho::last_header() const {
  std::lock_guard lock(mu_);
  return last_header_;
}

asio::awaitable<bool> WriteAll(tcp::socket& socket, std::string_view bytes) {
  boost::system::error_code ec;
  co_await asio::async_write(socket, asio::buffer(bytes), Ec(ec));
  co_return !ec;
}

asio::awaitable<void> DrainUntilClosed(tcp::socket& socket) {
  char piece[16 * 1024];
  boost::system::error_code ec;
  while (!ec) co_await socket.async_read_some(asio::buffer(piece), Ec(ec));
}

asio::awaitable<void> HoldForever(tcp::socket& socket) {
  asio::steady_timer forever(socket.get_executor(), asio::steady_timer::time_point::max());
  boost::system::error_code ec;
  co_await forever.async_wait(Ec(ec));
}

Client::Client(uint16_t port, std::chrono::milliseconds timeout)
    : stream_(context_), timeout_(timeout) {
  boost::system::error_code result = asio::error::timed_out;
  stream_.expires_after(timeout_);
  stream_.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port),
                        [&](boost::system::error_code ec) { result = ec; });
  context_.restart();
  context_.run();
  connected_ = !result;
}

void Client::RunUntil(const std::function<bool()>& done) {
  auto deadline = std::chrono::steady_clock::now() + timeout_;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    context_.restart();
    context_.run_one_for(deadline - std::chrono::steady_clock::now());
  }
}

std::string Client::ReadToEnd() {
  std::string received;
  bool ended = false;
  std::array<char, 1024> piece;
  std::function<void()> read = [&] {
    stream_.async_read_some(asio::buffer(piece), [&](boost::system::error_code ec, size_t n) {
      received.append(piece.data(), n);
      if (ec) {
        ended = true;
      } else {
        read();
      }
    });
  };
  stream_.expires_after(timeout_);
  read();
  RunUntil([&] { return ended; });
  return received;
}

std::string Client::EndAndReadToEnd() {
  boost::system::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  return ReadToEnd();
}

bool Client::Send(std::string_view bytes) {
  std::optional<boost::system::error_code> result;
  stream_.expires_after(timeout_);
  asio::async_write(stream_, asio::buffer(bytes),
                   [&](boost::system::error_code ec, size_t) { result = ec; });
  RunUntil([&] { return result.has_value(); });
  return result && !*result;
}

std::optional<http::response<http::string_body>> Client::Read(bool head) {
  http::response_parser<http::string_body> parser;
  parser.body_limit(~uint64_t{0});  // not boost::none: see agent/body.h
  parser.skip(head);
  std::optional<boost::system::error_code> result;
  stream_.expires_after(timeout_);
  http::async_read(stream_, buffer_, parser,
                   [&](boost::system::error_code ec, size_t) { result = ec; });
  RunUntil([&] { return result.has_value(); });
  last_error_ = result ? *result : boost::system::error_code(beast::error::timeout);
  if (!result || *result) return std::nullopt;
  return parser.release();
}

bool Client::ReadInto(http::response_parser<http::string_body>& parser,
                      const std::function<bool()>& done) {
  auto deadline = std::chrono::steady_clock::now() + timeout_;
  while (!done()) {
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline || parser.is_done()) return done();
    std::optional<boost::system::error_code> result;
    stream_.expires_at(deadline);
    http::async_read_some(stream_, buffer_, parser,
                          [&](boost::system::error_code ec, size_t) { result = ec; });
    RunUntil([&] { return result.has_value(); });
    if (!result || *result) return done();
  }
  return true;
}

std::optional<http::response<http::string_body>> Client::Get(std::string_view host,
                                                             std::string_view target,
                                                             std::string_view extra_headers) {
  std::string request = "GET " + std::string(target) + " HTTP/1.1\r\nHost: " + std::string(host) +
                        "\r\n" + std::string(extra_headers) + "\r\n";
  if (!Send(request)) return std::nullopt;
  return Read();
}

bool Client::ClosedByPeer() {
  std::optional<boost::system::error_code> result;
  stream_.expires_after(timeout_);
  stream_.async_read_some(buffer_.prepare(4096), [&](boost::system::error_code ec, size_t n) {
    buffer_.commit(n);
    if (ec || n == 0) result = ec;
  });
  RunUntil([&] { return result.has_value(); });
  return result && (*result == asio::error::eof || *result == asio::error::connection_reset);
}

bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return condition();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

AgentOptions LocalAgentOptions(int workers) {
  AgentOptions options;
  options.bind_address = "127.0.0.1";
  options.outbound_port = options.inbound_port = options.admin_port = 0;
  options.workers = workers;
  return options;
}

v1::Snapshot BaseSnapshot(std::string version) {
  v1::Snapshot s;
  s.set_version(std::move(version));
  v1::ChainSet* chains = s.mutable_chains();
  chains->set_name("chains");
  for (const ChainInfo& chain : Chains()) {
    for (const BuiltinDefault& d : chain.builtins) {
      if (d.module == builtin_names::kTlsTermination) continue;
      v1::ChainModule* m = MutableModulesOf(*chains, chain)->Add();
      m->set_name(std::string(d.module));
      m->set_priority(d.priority);
      m->set_builtin(true);
    }
  }
  return s;
}

v1::Service& AddService(v1::Snapshot& snapshot, const std::string& name,
                        const std::vector<uint16_t>& ports, bool inbound) {
  std::string cluster_name = name + "|80" + (inbound ? "|local" : "");
  v1::Cluster* cluster = snapshot.add_clusters();
  cluster->set_name(cluster_name);
  v1::Endpoints* endpoints = snapshot.add_endpoints();
  endpoints->set_cluster(cluster_name);
  for (uint16_t port : ports) {
    v1::Endpoint* e = endpoints->add_endpoints();
    e->set_address("127.0.0.1");
    e->set_port(port);
  }
  v1::Service* service = snapshot.add_services();
  service->set_name(name);
  service->set_inbound(inbound);
  std::string short_name = name.substr(0, name.find('.'));
  for (const std::string& host : {name, short_name}) {
    service->add_hosts(host);
    service->add_hosts(host + ":80");
  }
  v1::ServicePort* port = service->add_ports();
  port->set_port(80);
  port->set_protocol(v1::PROTOCOL_HTTP);
  v1::HttpRoute* route = service->add_routes();
  route->set_name("default");
  route->mutable_match()->set_prefix("/");
  v1::WeightedCluster* wc = route->add_clusters();
  wc->set_cluster(cluster_name);
  wc->set_weight(100);
  return *service;
}

uint16_t FreePort() {
  asio::io_context io;
  tcp::acceptor probe(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return probe.local_endpoint().port();
}

v1::Service& AddTcpService(v1::Snapshot& snapshot, const std::string& name, uint32_t port, const std::string& host,
                           uint16_t endpoint_port, uint16_t listen_port, bool inbound) {
  const std::string cluster = Cat(name, "|", port, inbound ? "|local" : "");
  snapshot.add_clusters()->set_name(cluster);
  v1::Endpoints* endpoints = snapshot.add_endpoints();
  endpoints->set_cluster(cluster);
  v1::Endpoint* endpoint = endpoints->add_endpoints();
  endpoint->set_address(host);
  endpoint->set_port(endpoint_port);
  v1::Service* service = snapshot.add_services();
  service->set_name(name);
  service->set_inbound(inbound);
  v1::ServicePort* service_port = service->add_ports();
  service_port->set_port(port);
  service_port->set_target_port(inbound ? endpoint_port : port);
  service_port->set_protocol(v1::PROTOCOL_TCP);
  if (!inbound) service_port->set_tcp_listen_port(listen_port);
  v1::WeightedCluster* wc = service_port->add_tcp_clusters();
  wc->set_cluster(cluster);
  wc->set_weight(1);
  return *service;
}

}  // namespace meshplug::agent::testing
