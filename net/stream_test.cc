#include "net/stream.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

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

  // The peer's last bytes, and its FIN after them.
  void SendLastBytes(std::string_view bytes) {
    peer_->write_some(asio::buffer(bytes));
    peer_->shutdown(tcp::socket::shutdown_send);
  }
  // `read` gets `bytes` the peer already sent, and the read after it the end of the stream.
  void ExpectBytesThenEnd(const std::shared_ptr<Read>& read, const std::string& bytes) {
    ASSERT_TRUE(RunUntil([&] { return read->ec.has_value(); }, 2s));
    EXPECT_FALSE(*read->ec);
    EXPECT_EQ(read->bytes, bytes);
    auto end = StartRead();
    ASSERT_TRUE(RunUntil([&] { return end->ec.has_value(); }, 2s)) << "the end of the stream was never read";
    EXPECT_EQ(*end->ec, asio::error::eof);
  }

  // A turn's end runs two entries: the turns gather writes, so the next write is held.
  void GatherWrites() {
    struct Nothing final : TurnEnd::Entry {
      void AtTurnEnd() override {}
    };
    TurnEnd& turn_end = TurnEnd::For(context_.get_executor());
    turn_end.Add(std::make_shared<Nothing>());
    turn_end.Add(std::make_shared<Nothing>());
    context_.restart();
    context_.poll();
    ASSERT_TRUE(turn_end.Worthwhile());
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

// What the peer has received so far, without waiting; `eof` tells whether the stream ended.
std::string Available(tcp::socket& peer, bool* eof = nullptr) {
  std::string received;
  peer.non_blocking(true);
  std::array<char, 65536> chunk;
  beast::error_code ec;
  while (size_t n = peer.read_some(asio::buffer(chunk), ec)) received.append(chunk.data(), n);
  if (eof) *eof = ec == asio::error::eof;
  return received;
}

class HeldWriteTest : public StreamTest {
 protected:
  // Fills the socket until it takes no more; the bytes sent.
  size_t FillSocket() {
    stream_->socket().non_blocking(true);
    const std::string filler(64 << 10, 'f');
    size_t filled = 0;
    beast::error_code ec;
    while (!ec) filled += stream_->socket().send(asio::buffer(filler), 0, ec);
    EXPECT_EQ(ec, asio::error::would_block);
    return filled;
  }
  // Everything the peer receives until the stream ends, running the loop meanwhile.
  std::string ReadToEnd() {
    std::string received;
    bool eof = false;
    EXPECT_TRUE(RunUntil([&] {
      received += Available(*peer_, &eof);
      return eof;
    }));
    return received;
  }
  // Gathers writes, then writes `bytes`, which are held.
  void StartHeldWrite(std::string_view bytes, std::chrono::milliseconds timeout = 5s) {
    GatherWrites();
    beast::error_code ec;
    EXPECT_FALSE(StartWrite(*stream_, asio::buffer(bytes), timeout, ec).has_value());
    EXPECT_FALSE(ec);
  }
  // Runs one turn of the loop, with its end.
  void RunTurn() {
    context_.restart();
    context_.poll();
  }
};

TEST_F(HeldWriteTest, ASmallWriteIsHeldUntilTheEndOfTheTurnThenSent) {
  StartHeldWrite("hello");
  EXPECT_EQ(Available(*peer_), "");
  std::string received;
  EXPECT_TRUE(RunUntil([&] {
    received += Available(*peer_);
    return received.size() >= 5;
  }));
  EXPECT_EQ(received, "hello");
}

TEST_F(HeldWriteTest, WhileTurnsDoNotGatherWritesAWriteGoesAtOnce) {
  beast::error_code ec;
  EXPECT_FALSE(StartWrite(*stream_, asio::buffer(std::string_view("now")), 5s, ec).has_value());
  EXPECT_FALSE(ec);
  EXPECT_EQ(Available(*peer_), "now");
}

// With the socket full, held bytes are still unsent when the next writes come: an async
// write takes them first, and a write above what is held goes after them.
TEST_F(HeldWriteTest, HeldBytesTheSocketHasNotTakenGoBeforeLaterWritesOfAnyKind) {
  const size_t filled = FillSocket();
  GatherWrites();
  const std::string big(64 << 10, 'z');
  std::optional<beast::error_code> written;
  asio::co_spawn(
      context_,
      [&]() -> asio::awaitable<void> {
        beast::error_code ec;
        EXPECT_FALSE(StartWrite(*stream_, asio::buffer(std::string_view("first,")), 5s, ec).has_value());
        co_await asio::async_write(*stream_, asio::buffer(std::string_view("second,")),
                                   asio::redirect_error(asio::use_awaitable, ec));
        if (!ec) {
          EXPECT_FALSE(StartWrite(*stream_, asio::buffer(std::string_view("third,")), 5s, ec).has_value());
        }
        if (!ec) {
          if (Pending rest = StartWrite(*stream_, asio::buffer(big), 5s, ec)) co_await std::move(*rest);
        }
        written = ec;
        stream_.reset();
      },
      asio::detached);
  RunTurn();  // the writes start while the socket is full
  const std::string received = ReadToEnd();
  ASSERT_TRUE(written.has_value());
  EXPECT_FALSE(*written);
  ASSERT_EQ(received.size(), filled + 19 + big.size());
  EXPECT_EQ(received.substr(filled), "first,second,third," + big);
}

TEST_F(HeldWriteTest, AStreamGoneWithBytesHeldSendsThemThenCloses) {
  StartHeldWrite("bye");
  stream_.reset();
  EXPECT_EQ(ReadToEnd(), "bye");
}

TEST_F(HeldWriteTest, HeldBytesTheSocketCannotTakeGoAsThePeerReadsEvenAfterTheStreamIsGone) {
  const size_t filled = FillSocket();
  StartHeldWrite("tail");
  RunTurn();  // the socket takes nothing
  stream_.reset();
  const std::string received = ReadToEnd();
  ASSERT_EQ(received.size(), filled + 4);
  EXPECT_EQ(received.substr(filled), "tail");
}

TEST_F(HeldWriteTest, AHeldWriteThatFailsFailsTheNextWriteWithItsError) {
  peer_->set_option(asio::socket_base::linger(true, 0));
  peer_->close();  // a reset
  StartHeldWrite("x");
  beast::error_code ec;
  RunTurn();  // the send fails
  EXPECT_FALSE(StartWrite(*stream_, asio::buffer(std::string_view("y")), 5s, ec).has_value());
  // The reset, as the held send found it; a send of its own would have met a broken pipe.
  EXPECT_EQ(ec, asio::error::connection_reset);
  EXPECT_EQ(stream_->held_write_error(), asio::error::connection_reset);
}

TEST_F(HeldWriteTest, HeldBytesTheSocketDoesNotTakeWithinTheirTimeoutFailTheConnection) {
  FillSocket();
  StartHeldWrite("x", 30ms);
  beast::error_code ec;
  RunTurn();  // the socket takes nothing: the bytes wait, within 30 ms
  ASSERT_TRUE(RunUntil([&] { return stream_->held_write_error().failed(); }));
  EXPECT_EQ(stream_->held_write_error(), beast::error::timeout);
  EXPECT_FALSE(stream_->socket().is_open());
  EXPECT_FALSE(StartWrite(*stream_, asio::buffer(std::string_view("y")), 5s, ec).has_value());
  EXPECT_EQ(ec, beast::error::timeout);
}

TEST_F(HeldWriteTest, HeldBytesSentBeforeTheirTimeoutLeaveTheConnectionWithoutIt) {
  const size_t filled = FillSocket();
  StartHeldWrite("x", 30ms);
  beast::error_code ec;
  RunTurn();  // the bytes wait, within 30 ms
  // The peer reads the filler; the loop does not run, so the drain's wait does not fire.
  std::string received;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (received.size() < filled && std::chrono::steady_clock::now() < deadline) received += Available(*peer_);
  ASSERT_EQ(received.size(), filled);
  EXPECT_FALSE(Flush(*stream_, ec).has_value());  // the socket takes them now
  EXPECT_FALSE(ec);
  const size_t refilled = FillSocket();  // a later write the peer does not read yet
  RunUntil([] { return false; }, 100ms);
  EXPECT_TRUE(stream_->socket().is_open());
  EXPECT_FALSE(stream_->held_write_error().failed());
  received.clear();
  ASSERT_TRUE(RunUntil([&] {
    received += Available(*peer_);
    return received.size() >= 1 + refilled;
  }));
  EXPECT_EQ(received.substr(0, 2), "xf");
}

TEST_F(HeldWriteTest, FlushSendsHeldBytesBeforeAShutdown) {
  StartHeldWrite("last");
  beast::error_code ec;
  EXPECT_EQ(Available(*peer_), "");
  EXPECT_FALSE(Flush(*stream_, ec).has_value());
  EXPECT_FALSE(ec);
  stream_->socket().shutdown(tcp::socket::shutdown_send);
  EXPECT_EQ(ReadToEnd(), "last");
}

TEST_F(HeldWriteTest, FlushWaitsForHeldBytesTheSocketCannotTake) {
  const size_t filled = FillSocket();
  StartHeldWrite("last");
  bool pending = false;
  asio::co_spawn(
      context_,
      [&]() -> asio::awaitable<void> {
        beast::error_code flush_ec;
        Pending rest = Flush(*stream_, flush_ec);
        pending = rest.has_value();
        if (rest) co_await std::move(*rest);
        EXPECT_FALSE(flush_ec);
        stream_->socket().shutdown(tcp::socket::shutdown_send);
      },
      asio::detached);
  RunTurn();  // Flush starts while the socket is full
  const std::string received = ReadToEnd();
  EXPECT_TRUE(pending);
  ASSERT_EQ(received.size(), filled + 4);
  EXPECT_EQ(received.substr(filled), "last");
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

// A read that gets less than it asked for leaves the next one to wait for epoll's next
// event (third_party/asio_rdhup.patch): whatever comes after it still arrives, and so does
// the end of the stream, whether it came with the last bytes or later.
TEST_F(StreamTest, AfterAShortReadLaterBytesAreRead) {
  auto read = StartRead();
  ExpectReadGets(read, "a");  // 1 of 16 bytes: the socket is drained
  ExpectReadGets(StartRead(), "b");
  ExpectReadGets(StartRead(), "c");
}

TEST_F(StreamTest, TheEndThatCameWithTheLastBytesIsReadAfterThem) {
  SendLastBytes("last");
  ExpectBytesThenEnd(StartRead(), "last");
}

TEST_F(StreamTest, TheEndThatCameWithTheBytesOfAPendingReadIsReadAfterThem) {
  ExpectReadGets(StartRead(), "a");
  auto read = StartRead();  // waits for epoll's event, which brings the bytes and the end
  SendLastBytes("last");
  ExpectBytesThenEnd(read, "last");
}

TEST_F(StreamTest, TheEndThatCameWhileNoReadWasPendingIsRead) {
  ExpectReadGets(StartRead(), "a");
  SendLastBytes("b");
  context_.restart();
  context_.poll();  // the event comes with no read waiting for it
  ExpectBytesThenEnd(StartRead(), "b");
}

TEST_F(StreamTest, BytesPastTheUrgentMarkAreReadAfterTheShortReadBeforeIt) {
  auto read = StartRead();
  // TCP stops a read at the urgent mark: "ab", then "cd" is still queued and raises no event.
  ASSERT_EQ(::send(peer_->native_handle(), "abU", 3, MSG_OOB), 3);
  ASSERT_EQ(::send(peer_->native_handle(), "cd", 2, 0), 2);
  ASSERT_TRUE(RunUntil([&] { return read->ec.has_value(); }, 2s));
  EXPECT_FALSE(*read->ec);
  std::string got = read->bytes;
  while (got.size() < 4) {
    read = StartRead();
    ASSERT_TRUE(RunUntil([&] { return read->ec.has_value(); }, 2s)) << "bytes past the urgent mark were never read";
    ASSERT_FALSE(*read->ec);
    got += read->bytes;
  }
  EXPECT_EQ(got, "abcd");
}

}  // namespace
}  // namespace meshplug::net
