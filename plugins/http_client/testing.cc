#include "plugins/http_client/testing.h"

#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>

namespace meshplug::plugins::http_client::testing {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using asio::ip::tcp;

asio::awaitable<void> Serve(tcp::socket socket, LoopbackServer::Handler handler,
                            LoopbackServer::Options options,
                            std::shared_ptr<LoopbackServer::Counters> counters) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  boost::system::error_code ec;
  for (int answered = 0;; ++answered) {
    const bool last = options.answers_per_connection > 0 &&
                      answered >= options.answers_per_connection;
    if (last && !options.read_one_more) break;
    http::request<http::string_body> request;
    co_await http::async_read(stream, buffer, request,
                              asio::redirect_error(asio::use_awaitable, ec));
    if (ec) break;
    ++counters->requests;
    if (last) break;
    auto response = co_await handler(request);
    const bool keep_alive = request.keep_alive() && response.keep_alive();
    response.keep_alive(keep_alive);
    response.prepare_payload();
    if (request.method() == http::verb::head) {
      http::response_serializer<http::string_body> serializer(response);
      co_await http::async_write_header(stream, serializer,
                                        asio::redirect_error(asio::use_awaitable, ec));
    } else {
      co_await http::async_write(stream, response, asio::redirect_error(asio::use_awaitable, ec));
    }
    if (ec || !keep_alive) break;
  }
  stream.socket().shutdown(tcp::socket::shutdown_both, ec);
}

asio::awaitable<void> Accept(tcp::acceptor& acceptor, LoopbackServer::Handler handler,
                             LoopbackServer::Options options,
                             std::shared_ptr<LoopbackServer::Counters> counters) {
  // Ends when the acceptor is closed or its io_context goes away.
  for (;;) {
    boost::system::error_code ec;
    tcp::socket socket = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    ++counters->connections;
    asio::co_spawn(acceptor.get_executor(), Serve(std::move(socket), handler, options, counters),
                   asio::detached);
  }
}

}  // namespace

LoopbackServer::LoopbackServer(asio::io_context& io, Handler handler)
    : LoopbackServer(io, std::move(handler), Options{}) {}

LoopbackServer::LoopbackServer(asio::io_context& io, Handler handler, Options options)
    : acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
      handler_(std::move(handler)) {
  asio::co_spawn(io, Accept(acceptor_, handler_, options, counters_), asio::detached);
}

std::string LoopbackServer::address() const {
  return "127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port());
}

std::string ClosedLoopbackAddress() {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const auto port = acceptor.local_endpoint().port();
  acceptor.close();
  return "127.0.0.1:" + std::to_string(port);
}

}  // namespace meshplug::plugins::http_client::testing
