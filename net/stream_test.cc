#include "net/stream.h"

#include <gtest/gtest.h>

#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace meshplug::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

// A connected pair on 127.0.0.1: `stream` is the one under test, `peer` the other end.
class StreamTest : public ::testing::Test {
 protected:
  StreamTest() {
    tcp::acceptor acceptor(context_, {asio::ip::make_address("127.0.0.1"), 0});
    tcp::socket client(context_);
    client.connect(acceptor.local_endpoint());
    peer_.emplace(acceptor.accept());
    stream_.emplace(std::move(client));
  }

  bool RunUntil(const std::function<bool()>& done, std::chrono::milliseconds limit = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      context_.restart();
      context_.run_for(5ms);
    }
    return done();
  }

  // Starts a read of up to 16 bytes; the result lands in `result`.
  struct Read {
    std::optional<beast::error_code> ec;
    std::string bytes;
  };
  // The peer writes `bytes`; the pending `read` gets them.
  void ExpectReadGets(const std::shared_ptr<Read>& read, const std::string& bytes) {
    peer_->write_some(asio::buffer(bytes));
    ASSERT_TRUE(RunUntil([&] { return read->ec.has_value(); }));
    EXPECT_FALSE(*read->ec);
    EXPECT_EQ(read->bytes, bytes);
  }

  std::shared_ptr<Read> StartRead() {
    auto read = std::make_shared<Read>();
    auto buffer = std::make_shared<std::array<char, 16>>();
    stream_->async_read_some(asio::buffer(*buffer), [read, buffer](beast::error_code ec, size_t n) {
      read->ec = ec;
      read->bytes.assign(buffer->data(), n);
    });
    return read;
  }

  asio::io_context context_;
  std::optional<tcp::socket> peer_;
  std::optional<Stream> stream_;
};

TEST_F(StreamTest, APendingReadPastItsDeadlineTimesOutAndTheSocketCloses) {
  const auto start = std::chrono::steady_clock::now();
  stream_->expires_after(50ms);
  auto read = StartRead();
  ASSERT_TRUE(RunUntil([&] { return read->ec.has_value(); }));
  EXPECT_EQ(*read->ec, beast::error::timeout);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 50ms);
  EXPECT_FALSE(stream_->socket().is_open());
  // The peer sees the close.
  peer_->non_blocking(true);
  beast::error_code ec;
  EXPECT_TRUE(RunUntil([&] {
    char byte;
    peer_->read_some(asio::buffer(&byte, 1), ec);
    return ec != asio::error::would_block;
  }));
  EXPECT_EQ(ec, asio::error::eof);
}

TEST_F(StreamTest, ADeadlineThatPassedWhileIdleFailsTheNextOperation) {
  stream_->expires_after(10ms);
  // Nothing pending: the socket stays open until an operation is started.
  RunUntil([] { return false; }, 50ms);
  EXPECT_TRUE(stream_->socket().is_open());
  auto read = StartRead();
  ASSERT_TRUE(RunUntil([&] { return read->ec.has_value(); }));
  EXPECT_EQ(*read->ec, beast::error::timeout);
  EXPECT_FALSE(stream_->socket().is_open());
}

TEST_F(StreamTest, ANewDeadlineOrNoneStartsOver) {
  stream_->expires_after(10ms);
  RunUntil([] { return false; }, 50ms);  // the first deadline passes, nothing pending
  stream_->expires_never();
  auto read = StartRead();
  RunUntil([] { return false; }, 50ms);
  EXPECT_FALSE(read->ec.has_value());  // no deadline: still waiting
  ExpectReadGets(read, "hi");
}

// Deadlines moved later, earlier or cleared before an operation starts: the operation is
// bounded by the last one set.
TEST_F(StreamTest, TheLastDeadlineSetIsTheOneThatHolds) {
  stream_->expires_after(30ms);
  stream_->expires_after(10s);  // later
  auto read = StartRead();
  RunUntil([] { return false; }, 100ms);
  EXPECT_FALSE(read->ec.has_value());
  ExpectReadGets(read, "a");

  stream_->expires_after(30ms);
  stream_->expires_never();  // cleared
  read = StartRead();
  RunUntil([] { return false; }, 100ms);
  EXPECT_FALSE(read->ec.has_value());
  ExpectReadGets(read, "b");

  const auto start = std::chrono::steady_clock::now();
  stream_->expires_after(10s);
  stream_->expires_after(30ms);  // earlier
  read = StartRead();
  ASSERT_TRUE(RunUntil([&] { return read->ec.has_value(); }, 2s));
  EXPECT_EQ(*read->ec, beast::error::timeout);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

TEST_F(StreamTest, AnEarlierDeadlineOfAnotherStreamFiresFirst) {
  // This stream waits for a late deadline; another, set afterwards with an earlier one,
  // times out at its own.
  stream_->expires_after(10s);
  auto late = StartRead();
  tcp::acceptor acceptor(context_, {asio::ip::make_address("127.0.0.1"), 0});
  tcp::socket client(context_);
  client.connect(acceptor.local_endpoint());
  tcp::socket other_peer = acceptor.accept();
  Stream other(std::move(client));
  other.expires_after(30ms);
  std::optional<beast::error_code> early;
  std::array<char, 4> buffer;
  other.async_read_some(asio::buffer(buffer), [&](beast::error_code ec, size_t) { early = ec; });
  ASSERT_TRUE(RunUntil([&] { return early.has_value(); }, 2s));
  EXPECT_EQ(*early, beast::error::timeout);
  EXPECT_FALSE(late->ec.has_value());
}

// As with Beast, reads and writes have their own deadlines: a short one set for a write
// that completes leaves a read pending under none, or under a longer one, alone.
TEST_F(StreamTest, AWritesDeadlineLeavesAPendingReadAlone) {
  for (bool read_has_deadline : {false, true}) {
    SCOPED_TRACE(read_has_deadline ? "read under 10 s" : "read under none");
    if (read_has_deadline) {
      stream_->expires_after(10s);
    } else {
      stream_->expires_never();
    }
    auto read = StartRead();
    stream_->expires_after(30ms);
    std::optional<beast::error_code> written;
    stream_->async_write_some(asio::buffer(std::string_view("x")), [&](beast::error_code ec, size_t) { written = ec; });
    ASSERT_TRUE(RunUntil([&] { return written.has_value(); }));
    EXPECT_FALSE(*written);
    RunUntil([] { return false; }, 100ms);  // the write's deadline passes
    EXPECT_FALSE(read->ec.has_value());
    EXPECT_TRUE(stream_->socket().is_open());
    ExpectReadGets(read, read_has_deadline ? "late" : "later");
  }
}

TEST_F(StreamTest, NoDeadlineForAReadLeavesAPendingWriteUnderItsOwn) {
  // The peer reads nothing, so a big enough write stays pending.
  stream_->expires_after(50ms);
  std::optional<beast::error_code> written;
  const std::string big(8 << 20, 'x');
  asio::async_write(*stream_, asio::buffer(big), [&](beast::error_code ec, size_t) { written = ec; });
  stream_->expires_never();  // as a reader would before its read
  auto read = StartRead();
  ASSERT_TRUE(RunUntil([&] { return written.has_value(); }));
  EXPECT_EQ(*written, beast::error::timeout);
}

TEST_F(StreamTest, StartWriteOfWhatTheSocketTakesFinishesAtOnce) {
  beast::error_code ec;
  EXPECT_FALSE(StartWrite(*stream_, asio::buffer(std::string_view("hello")), 5s, ec).has_value());
  EXPECT_FALSE(ec);
  std::string received(5, '\0');
  asio::read(*peer_, asio::buffer(received));
  EXPECT_EQ(received, "hello");
}

TEST_F(StreamTest, StartWriteSendsWhatTheSocketTakesAndTheRestAsynchronously) {
  // More than the socket takes at once: the rest goes when the peer reads.
  const std::string big(4 << 20, 'y');
  std::optional<beast::error_code> written;
  bool pending = false;
  asio::co_spawn(
      context_,
      [&]() -> asio::awaitable<void> {
        beast::error_code ec;
        Pending rest = StartWrite(*stream_, asio::buffer(big), 5s, ec);
        pending = rest.has_value();
        if (rest) co_await std::move(*rest);
        written = ec;
      },
      asio::detached);
  std::string received;
  peer_->non_blocking(true);
  EXPECT_TRUE(RunUntil([&] {
    std::array<char, 65536> chunk;
    beast::error_code ec;
    received.append(chunk.data(), peer_->read_some(asio::buffer(chunk), ec));
    return written.has_value() && received.size() == big.size();
  }));
  ASSERT_TRUE(written.has_value());
  EXPECT_TRUE(pending);
  EXPECT_FALSE(*written);
  EXPECT_EQ(received, big);
}

TEST_F(StreamTest, CancelIsNotATimeout) {
  stream_->expires_after(10s);
  auto read = StartRead();
  stream_->cancel();
  ASSERT_TRUE(RunUntil([&] { return read->ec.has_value(); }));
  EXPECT_EQ(*read->ec, asio::error::operation_aborted);
  EXPECT_TRUE(stream_->socket().is_open());
}

TEST_F(StreamTest, AStreamGoneWithAReadPendingCompletesItAsAborted) {
  stream_->expires_after(10ms);
  auto read = StartRead();
  stream_.reset();
  ASSERT_TRUE(RunUntil([&] { return read->ec.has_value(); }));
  EXPECT_EQ(*read->ec, asio::error::operation_aborted);
  RunUntil([] { return false; }, 50ms);  // the deadline's time passes with nothing to expire
}

}  // namespace
}  // namespace meshplug::net
