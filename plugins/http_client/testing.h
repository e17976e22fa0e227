// Test helpers: a loopback HTTP server and a bounded way to run a coroutine to completion.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace meshplug::plugins::http_client::testing {

namespace http = boost::beast::http;

// Serves HTTP/1.1 on 127.0.0.1 (an ephemeral port) on `io`, one coroutine per connection.
// Connections are kept alive unless the request or the handler's response says
// `Connection: close`. It stops when `io` is destroyed.
class LoopbackServer {
 public:
  using Handler = std::function<boost::asio::awaitable<http::response<http::string_body>>(
      const http::request<http::string_body>&)>;

  // How the server ends kept-alive connections on its own.
  struct Options {
    // Requests answered per connection before the server closes it (0: no limit), without
    // saying so in the last response, like a server whose idle timeout runs out.
    int answers_per_connection = 0;
    // Then: false closes at once; true first reads the next request and closes without
    // answering it, like a close that crossed the request on the wire.
    bool read_one_more = false;
  };

  LoopbackServer(boost::asio::io_context& io, Handler handler);
  LoopbackServer(boost::asio::io_context& io, Handler handler, Options options);

  // "127.0.0.1:PORT"
  std::string address() const;
  // Requests read, answered or not.
  int requests() const { return counters_->requests; }
  // Connections accepted.
  int connections() const { return counters_->connections; }

  struct Counters {
    int requests = 0;
    int connections = 0;
  };

 private:
  boost::asio::ip::tcp::acceptor acceptor_;
  Handler handler_;
  std::shared_ptr<Counters> counters_ = std::make_shared<Counters>();
};

// A free loopback port with nothing listening on it (bound, then closed).
std::string ClosedLoopbackAddress();

// Runs `io` until every task completes or `limit` passes; rethrows the first task
// exception. A task that did not finish in time is nullopt.
template <typename T>
std::vector<std::optional<T>> RunAll(boost::asio::io_context& io,
                                     std::vector<boost::asio::awaitable<T>> tasks,
                                     std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  // Shared with the completion handlers, which may outlive this call after a timeout.
  struct State {
    std::vector<std::optional<T>> results;
    std::exception_ptr failure;
    size_t pending = 0;
  };
  auto state = std::make_shared<State>();
  state->results.resize(tasks.size());
  state->pending = tasks.size();
  for (size_t i = 0; i < tasks.size(); ++i) {
    boost::asio::co_spawn(io, std::move(tasks[i]), [state, i](std::exception_ptr e, T value) {
      if (e && !state->failure) state->failure = e;
      if (!e) state->results[i] = std::move(value);
      --state->pending;
    });
  }
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (state->pending > 0 && std::chrono::steady_clock::now() < deadline) {
    io.restart();
    io.run_one_until(deadline);
  }
  if (state->failure) std::rethrow_exception(state->failure);
  return state->results;
}

template <typename T>
std::optional<T> RunFor(boost::asio::io_context& io, boost::asio::awaitable<T> task,
                        std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  std::vector<boost::asio::awaitable<T>> tasks;
  tasks.push_back(std::move(task));
  return std::move(RunAll(io, std::move(tasks), limit).front());
}

}  // namespace meshplug::plugins::http_client::testing
