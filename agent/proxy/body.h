// Streaming HTTP bodies between two connections, piece by piece, so a proxied body never
// has to fit in memory: BodySource reads from a Beast parser, BodyFilters runs the body
// steps of the plugins that asked for them, BodySink writes with the outgoing framing.
#pragma once

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/chunk_encode.hpp>
#include <boost/beast/http/parser.hpp>
#include <charconv>
#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "agent/proxy/body_piece.h"
#include "agent/proxy/http_message.h"
#include "net/stream.h"
#include "plugins/api/plugin.h"

namespace meshplug::agent::proxy {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;

// How many bytes a connection's read buffer may hold: a whole header block plus one body
// piece. Beast needs a chunk-size line or a trailer section whole in the buffer; without
// this cap a line that never ends grows the buffer without limit. Reads past it fail with
// http::error::buffer_overflow.
inline size_t ReadBufferLimit(uint32_t max_header_bytes) {
  return size_t{max_header_bytes} + kBodyPieceBytes;
}

// A plugin step threw. Carries the plugin's name for the error counter; the original
// message stays in detail() and never reaches a client.
class PluginError : public std::runtime_error {
 public:
  PluginError(std::string plugin, std::string detail)
      : std::runtime_error("plugin failed"), plugin_(std::move(plugin)), detail_(std::move(detail)) {}
  const std::string& plugin() const { return plugin_; }
  const std::string& detail() const { return detail_; }

 private:
  std::string plugin_;
  std::string detail_;
};

// Called in a catch block: throws the exception being handled as PluginError naming
// `plugin`.
[[noreturn]] void ThrowPluginError(const std::string& plugin);

// Runs one plugin step (`step()` returns its awaitable); an exception leaves as
// PluginError naming the plugin. The session turns it into a 500 and counts it.
template <typename Step>
asio::awaitable<plugins::Verdict> PluginStep(const std::string& plugin, Step step) {
  try {
    co_return co_await step();
  } catch (...) {
    ThrowPluginError(plugin);
  }
}

// The same for a step that never suspends (plugins::ImmediateHttpPlugin).
template <typename Step>
plugins::Verdict ImmediateStep(const std::string& plugin, Step step) {
  try {
    return step();
  } catch (...) {
    ThrowPluginError(plugin);
  }
}

// "No body limit" for a parser. Not boost::none: Boost 1.74 compares the Content-Length
// with the optional limit, and any length compares greater than an empty optional.
inline constexpr uint64_t kUnlimitedBody = ~uint64_t{0};

template <bool isRequest>
class BodySource {
 public:
  using Parser = http::parser<isRequest, http::buffer_body>;

  BodySource(net::Stream& stream, beast::flat_buffer& buffer, Parser& parser,
             std::chrono::milliseconds idle_timeout)
      : stream_(stream), buffer_(buffer), parser_(parser), idle_timeout_(idle_timeout) {}

  bool done() const { return parser_.is_done(); }

  // The next non-empty piece of the body into `out` (empty once the body has ended). Body
  // bytes the buffer already holds are taken without a coroutine (net::Pending).
  net::Pending Next(std::string& out, beast::error_code& ec);

 private:
  // Parses on into `out` until it holds a piece, the body has ended or a read failed.
  net::Pending Continue(std::string& out, beast::error_code& ec);
  // Appends what the last parse put into the scratch to `out`; false when it failed (`ec`).
  bool Take(std::string& out, beast::error_code& ec);
  // After a read Continue started: takes its piece, and goes on if it had none.
  asio::awaitable<void> FinishRead(asio::awaitable<void> read, std::string& out, beast::error_code& ec);

  net::Stream& stream_;
  beast::flat_buffer& buffer_;
  Parser& parser_;
  std::chrono::milliseconds idle_timeout_;
  // Where the parser puts body bytes: sized to what the body still needs (at most one
  // piece), allocated once and never zeroed — a fresh zeroed 64 KiB string per read was
  // most of the agent's CPU for small bodies.
  std::unique_ptr<char[]> scratch_;
  size_t scratch_size_ = 0;
  size_t want_ = 0;  // what the current parse may put into the scratch
};

enum class Framing {
  kNone,     // no body follows the header
  kLength,   // Content-Length bytes
  kChunked,  // chunked transfer coding
  kClose,    // the body ends when the connection closes (HTTP/1.0 peers)
};

// Sets the framing fields of an outgoing header.
template <bool isRequest>
void SetFraming(http::header<isRequest>& header, Framing framing, std::optional<uint64_t> length) {
  header.erase(http::field::transfer_encoding);
  if (framing == Framing::kChunked) {
    header.erase(http::field::content_length);
    header.set(http::field::transfer_encoding, "chunked");
  } else if (framing == Framing::kLength) {
    header.set(http::field::content_length, std::to_string(*length));
  } else if (framing == Framing::kClose) {
    header.erase(http::field::content_length);
  }
}

// "HTTP/1.1 200 OK\r\n" or "GET /path HTTP/1.1\r\n" of `header`, with `version`.
template <bool isRequest>
void AppendStartLine(std::string& out, const http::header<isRequest>& header, unsigned version) {
  const char v[] = {'H', 'T', 'T', 'P', '/', static_cast<char>('0' + version / 10), '.',
                    static_cast<char>('0' + version % 10)};
  if constexpr (isRequest) {
    out.append(header.method_string()).append(" ").append(header.target()).append(" ").append(v, sizeof v);
  } else {
    const unsigned status = header.result_int();
    const char code[] = {' ', static_cast<char>('0' + status / 100 % 10), static_cast<char>('0' + status / 10 % 10),
                         static_cast<char>('0' + status % 10), ' '};
    out.append(v, sizeof v).append(code, sizeof code).append(header.reason());
  }
  out.append("\r\n");
}

inline void AppendField(std::string& out, std::string_view name, std::string_view value) {
  out.append(name).append(": ").append(value).append("\r\n");
}

// A stored field as it goes on the wire, "name: value\r\n": Beast (1.74's
// basic_fields::value_type) keeps the line in one block, so it is appended at once.
// HeaderBytesAreBeastsBytes checks it against Beast's own serializer.
inline std::string_view FieldLine(const http::fields::value_type& f) {
  return {f.name_string().data(), f.name_string().size() + f.value().size() + 4};
}

// A size hint for a header block: its fields, plus room for a start line and the fields
// the agent adds.
template <bool isRequest>
size_t HeaderCapacity(const http::header<isRequest>& header) {
  size_t size = 128;
  if constexpr (isRequest) size += header.target().size();
  for (const auto& f : header) size += FieldLine(f).size();
  return size;
}

// The HTTP/1.1 header block as it goes on the wire: the start line, each field as Beast
// stores it ("name: value\r\n"), and the blank line. Written directly: Beast's serializer
// cost more than the rest of sending a small response.
template <bool isRequest>
std::string HeaderBytes(const http::header<isRequest>& header) {
  std::string out;
  out.reserve(HeaderCapacity(header));
  AppendStartLine(out, header, header.version());
  for (const auto& f : header) out.append(FieldLine(f));
  out.append("\r\n");
  return out;
}

// What the agent itself sets in a header it sends on: the framing, whether the connection
// stays open, and a request's Upgrade offer.
struct OutgoingFields {
  Framing framing = Framing::kNone;
  std::optional<uint64_t> length;  // for kLength
  bool keep_alive = true;
  std::string_view upgrade;  // a request's Upgrade offer ("": none)
  bool drop_expect = false;  // the agent answers Expect: 100-continue itself
};

// `header` as the next hop gets it, in HTTP/1.1, written without copying it: its
// hop-by-hop fields and the framing fields `out` replaces are left out and `out`'s are
// appended. The same bytes as HeaderBytes of a copy passed through RemoveHopByHop,
// SetFraming and SetKeepAlive, then given `out.upgrade`'s Connection and Upgrade.
template <bool isRequest>
std::string OutgoingHeaderBytes(const http::header<isRequest>& header, const OutgoingFields& out) {
  const bool reframed = out.framing != Framing::kNone;
  std::string bytes;
  bytes.reserve(HeaderCapacity(header));
  AppendStartLine(bytes, header, 11);
  for (const auto& f : header) {
    if (HopByHop(f.name()) || (reframed && f.name() == http::field::content_length) ||
        (out.drop_expect && f.name() == http::field::expect)) {
      continue;
    }
    bytes.append(FieldLine(f));
  }
  if (out.framing == Framing::kChunked) AppendField(bytes, "Transfer-Encoding", "chunked");
  if (out.framing == Framing::kLength) {
    char digits[24];
    AppendField(bytes, "Content-Length",
                std::string_view(digits, std::to_chars(digits, digits + sizeof digits, *out.length).ptr - digits));
  }
  if (!out.upgrade.empty()) {
    AppendField(bytes, "Connection", "Upgrade");
    AppendField(bytes, "Upgrade", out.upgrade);
  } else if (!out.keep_alive) {
    AppendField(bytes, "Connection", "close");
  }
  bytes.append("\r\n");
  return bytes;
}

// `head` and `body` in one write (net::StartWrite). The awaitable, if any, views them:
// co_await it before they go.
net::Pending WriteMessage(net::Stream& stream, std::string_view head, std::string_view body,
                          std::chrono::milliseconds timeout, beast::error_code& ec);

// Writes a body with the outgoing framing. The header may be handed over unwritten: it
// then goes out with the first body bytes in one write, so a small response is one TCP
// segment instead of two (each send on a loopback hop costs a full trip through the stack).
class BodySink {
 public:
  BodySink(net::Stream& stream, Framing framing, std::chrono::milliseconds idle_timeout,
           std::string header = {})
      : stream_(stream), framing_(framing), idle_timeout_(idle_timeout), header_(std::move(header)) {}

  // Writes `piece` (with the pending header, if any); `last` also ends the body (the last
  // chunk for chunked framing). Usually finishes at once (net::Pending); `piece` must live
  // until it has finished.
  net::Pending Write(std::string_view piece, bool last, beast::error_code& ec);
  // Writes the header handed over, alone (one buffer, no list to build).
  net::Pending WriteHeader(beast::error_code& ec);
  // The header handed over has not been written yet.
  bool header_pending() const { return !header_.empty(); }
  // Trailer fields for the last chunk (chunked framing only).
  void set_trailers(const http::fields& trailers) { trailers_ = trailers; }

 private:
  // After StartWrite: the header has gone when the write finished at once, else with the
  // rest (FinishWrite).
  net::Pending Written(net::Pending rest);
  asio::awaitable<void> FinishWrite(asio::awaitable<void> rest);

  net::Stream& stream_;
  Framing framing_;
  std::chrono::milliseconds idle_timeout_;
  std::string header_;
  http::fields trailers_;
  // The chunk framing of the write in progress, which its buffers view.
  std::optional<http::chunk_header> chunk_size_;
  std::optional<http::chunk_last<http::fields>> chunk_end_;
};

// The body steps of the plugins that asked to see a body, in the order given. A kBuffer
// plugin holds the pieces until the last and then sees the whole body once.
class BodyFilters {
 public:
  BodyFilters(std::vector<plugins::HttpPlugin*> plugins, bool request, uint64_t buffer_limit);

  bool empty() const { return stages_.empty(); }
  // Passes `piece` through every stage; a stage that is buffering leaves it empty. A
  // Respond verdict (or 413 when a buffer outgrows the limit) stops the body. A stage that
  // throws is reported as PluginError.
  asio::awaitable<plugins::Verdict> Run(plugins::HttpContext& ctx, std::string& piece, bool last);

 private:
  struct Stage {
    plugins::HttpPlugin* plugin;
    plugins::BodyMode mode;
    std::string buffered;
  };
  std::vector<Stage> stages_;
  bool request_;
  uint64_t buffer_limit_;
};

}  // namespace meshplug::agent::proxy
