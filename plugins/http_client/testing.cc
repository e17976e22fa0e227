#include "plugins/http_client/testing.h"

#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

namespace meshplug::plugins::testing {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using asio::ip::tcp;

asio::awaitable<void> Serve(tcp::socket socket, LoopbackServer::Handler handler,
                            std::shared_ptr<int> requests) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  boost::system::error_code ec;
  http::request<http::string_body> request;
  co_await http::async_read(stream, buffer, request, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return;
  ++*requests;
  auto response = co_await handler(request);
  response.keep_alive(false);
  response.prepare_payload();
  co_await http::async_write(stream, response, asio::redirect_error(asio::use_awaitable, ec));
}

asio::awaitable<void> Accept(tcp::acceptor& acceptor, LoopbackServer::Handler handler,
                             std::shared_ptr<int> requests) {
  // Ends when the acceptor is closed or its io_context goes away.
  for (;;) {
    boost::system::error_code ec;
    tcp::socket socket = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    asio::co_spawn(acceptor.get_executor(), Serve(std::move(socket), handler, requests),
                   asio::detached);
  }
}

}  // namespace

LoopbackServer::LoopbackServer(asio::io_context& io, Handler handler)
    : acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
      handler_(std::move(handler)) {
  asio::co_spawn(io, Accept(acceptor_, handler_, requests_), asio::detached);
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

}  // namespace meshplug::plugins::testing
