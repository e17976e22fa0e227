// Test helpers with real sockets on 127.0.0.1: upstream HTTP/TCP servers, a client with
// deadlines on every operation, and snapshot builders.
#pragma once

#include <utility>

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/agent.h"
#include "meshplug/v1/snapshot.pb.h"

namespace meshplug::agent::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

// An HTTP/1.1 upstream on its own thread. Paths:
//   /slow          answers only once ReleaseSlow() is called (never on its own)
//   /reset         closes the connection without answering
//   /status/<N>    answers status N
//   /echo          streams the request body back, chunked, piece by piece
//   anything else  200 with body = the server's name
// Every response carries `x-upstream: <name>` and echoes `x-test`.
class TestUpstream {
 public:
  explicit TestUpstream(std::string name);
  ~TestUpstream();

  uint16_t port() const { return port_; }
  const std::string& name() const { return name_; }
  int connections() const { return connections_.load(); }
  // Connections accepted and not closed yet (by either side).
  int open_connections() const { return open_connections_.load(); }
  int requests() const { return requests_.load(); }
  // /slow requests waiting for ReleaseSlow().
  int slow_waiting() const { return slow_waiting_.load(); }
  // Lets every waiting /slow request answer.
  void ReleaseSlow();
  // The request header of the last request, as received.
  std::string last_request_header() const;

 private:
  asio::awaitable<void> Accept();
  asio::awaitable<void> Serve(asio::ip::tcp::socket socket);

  std::string name_;
  asio::io_context context_{1};
  asio::ip::tcp::acceptor acceptor_;
  asio::steady_timer slow_gate_{context_, asio::steady_timer::time_point::max()};
  uint16_t port_ = 0;
  std::atomic<int> connections_{0};
  std::atomic<int> open_connections_{0};
  std::atomic<int> requests_{0};
  std::atomic<int> slow_waiting_{0};
  mutable std::mutex mu_;
  std::string last_request_header_;
  std::thread thread_;
};

// A TCP server that reads until the client half-closes, then writes back what it read
// prefixed with `prefix` and closes.
class TcpEchoUpstream {
 public:
  explicit TcpEchoUpstream(std::string prefix);
  ~TcpEchoUpstream();
  uint16_t port() const { return port_; }

 private:
  asio::awaitable<void> Accept();

  std::string prefix_;
  asio::io_context context_{1};
  asio::ip::tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::thread thread_;
};

// A TCP server whose connections are served by a test's own coroutine, for upstreams
// that misbehave on purpose. `handler` gets the socket and the connection's number (0,
// 1, ...); the connection closes when it returns.
class RawUpstream {
 public:
  using Handler = std::function<asio::awaitable<void>(asio::ip::tcp::socket&, int connection)>;
  explicit RawUpstream(Handler handler);
  ~RawUpstream();
  uint16_t port() const { return port_; }
  int connections() const { return connections_.load(); }
  int open_connections() const { return open_connections_.load(); }

 private:
  asio::awaitable<void> Accept();

  Handler handler_;
  asio::io_context context_{1};
  asio::ip::tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::atomic<int> connections_{0};
  std::atomic<int> open_connections_{0};
  std::thread thread_;
};

// Coroutine helpers for RawUpstream handlers. `pending` keeps bytes read past a header.
// The next request header ("" on EOF or error).
asio::awaitable<std::string> ReadRequestHeader(asio::ip::tcp::socket& socket, std::string& pending);
asio::awaitable<bool> WriteAll(asio::ip::tcp::socket& socket, std::string_view bytes);
// Reads and drops everything until the peer closes.
asio::awaitable<void> DrainUntilClosed(asio::ip::tcp::socket& socket);
// Keeps the connection open, reading nothing, until the upstream is destroyed.
asio::awaitable<void> HoldForever(asio::ip::tcp::socket& socket);

// A RawUpstream handler for HTTP Upgrade: a request asking for websocket gets 101, then
// the handler reads until the client half-closes and writes back "ws:" + what it read; any
// other request gets 200 "plain". The last request header it read is kept.
class UpgradeEcho {
 public:
  RawUpstream::Handler handler();
  std::string last_header() const;

 private:
  mutable std::mutex mu_;
  std::string last_header_;
};

// One client connection; every call completes or fails within `timeout`.
class Client {
 public:
  explicit Client(uint16_t port, std::chrono::milliseconds timeout = std::chrono::seconds(10));

  bool connected() const { return connected_; }
  // Writes raw bytes.
  bool Send(std::string_view bytes);
  // Reads one response; nullopt on error, timeout or close (last_error() tells which).
  std::optional<http::response<http::string_body>> Read(bool head = false);
  // Reads into `parser` until `done()` holds; false on error, timeout or close first.
  bool ReadInto(http::response_parser<http::string_body>& parser,
                const std::function<bool()>& done);
  // The error of the last Read (beast::error::timeout when it timed out).
  boost::system::error_code last_error() const { return last_error_; }
  // Send + Read of a GET with the given Host.
  std::optional<http::response<http::string_body>> Get(std::string_view host,
                                                       std::string_view target,
                                                       std::string_view extra_headers = {});
  // True when the server closed the connection (reads EOF) within the timeout.
  bool ClosedByPeer();
  // Reads until the peer ends the connection (or the timeout); what was read.
  std::string ReadToEnd();
  // Ends this side's sending (half-close), then ReadToEnd.
  std::string EndAndReadToEnd();
  beast::tcp_stream& stream() { return stream_; }
  beast::flat_buffer& buffer() { return buffer_; }
  // Runs the client's io_context until `done` or the timeout.
  void RunUntil(const std::function<bool()>& done);

 private:
  asio::io_context context_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::chrono::milliseconds timeout_;
  bool connected_ = false;
  boost::system::error_code last_error_;
};

// Waits until `condition` holds or `timeout` passes; returns the last value.
bool WaitFor(const std::function<bool()>& condition,
             std::chrono::milliseconds timeout = std::chrono::seconds(10));

// A free local port: bind, read, release.
uint16_t FreePort();

// An agent on 127.0.0.1 with every listener on a free port.
AgentOptions LocalAgentOptions(int workers);

// A snapshot with the default chains but tls-termination, and no services.
v1::Snapshot BaseSnapshot(std::string version);
// Adds an outbound service with one catch-all route to cluster "<name>|80" whose
// endpoints are the given local ports. Hosts: name, short name, with and without :80.
v1::Service& AddService(v1::Snapshot& snapshot, const std::string& name,
                        const std::vector<uint16_t>& ports, bool inbound = false);

// Adds a TCP service `name` port `port` with one endpoint host:endpoint_port in cluster
// "<name>|<port>" (inbound: "...|local", and the endpoint is the app's port). Outbound,
// the agent serves it on `listen_port` (0: only by its virtual address).
v1::Service& AddTcpService(v1::Snapshot& snapshot, const std::string& name, uint32_t port, const std::string& host,
                           uint16_t endpoint_port, uint16_t listen_port, bool inbound = false);

}  // namespace meshplug::agent::testing
