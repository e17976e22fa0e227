// An HTTP/2 client made of frames written by hand, for tests that speak to an agent as a
// well-behaved client or as an attacker: any frame in any order, header blocks coded with
// nghttp2's HPACK coder, every read bounded by a deadline.
#pragma once

#include <nghttp2/nghttp2.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace meshplug::agent::testing {

enum H2Type : uint8_t {
  kH2Data = 0,
  kH2Headers = 1,
  kH2RstStream = 3,
  kH2Settings = 4,
  kH2Ping = 6,
  kH2Goaway = 7,
  kH2WindowUpdate = 8,
  kH2Continuation = 9,
};
inline constexpr uint8_t kH2EndStream = 0x1;
inline constexpr uint8_t kH2Ack = 0x1;
inline constexpr uint8_t kH2EndHeaders = 0x4;

using H2Fields = std::vector<std::pair<std::string, std::string>>;
using H2Settings = std::vector<std::pair<uint16_t, uint32_t>>;

struct H2Frame {
  uint8_t type = 0;
  uint8_t flags = 0;
  uint32_t stream = 0;
  std::string payload;
};

std::string H2FrameBytes(uint8_t type, uint8_t flags, uint32_t stream, std::string_view payload);
std::string H2SettingsFrame(const H2Settings& settings);
std::string H2WindowUpdate(uint32_t stream, uint32_t increment);
std::string H2RstStream(uint32_t stream, uint32_t error);

struct H2Response {
  int status = 0;
  H2Fields headers;  // without :status
  std::string body;
  bool ended = false;  // END_STREAM arrived
  std::optional<uint32_t> reset;  // the RST_STREAM error code, when the server reset it
  std::string header(std::string_view name) const;
};

class H2Client {
 public:
  // Connects and sends the preface with `settings`.
  explicit H2Client(uint16_t port, const H2Settings& settings = {},
                    std::chrono::milliseconds timeout = std::chrono::seconds(10));
  ~H2Client();
  H2Client(const H2Client&) = delete;
  H2Client& operator=(const H2Client&) = delete;

  bool connected() const { return fd_ >= 0; }
  bool Send(std::string_view bytes);
  // A header block for `fields`, coded with this connection's HPACK state.
  std::string Encode(const H2Fields& fields);
  // HEADERS (+ DATA) of a request on stream `id`; `end`: the request ends with them. The
  // body is sent as the server's windows allow, reading frames while they are closed.
  bool Request(uint32_t id, std::string_view method, std::string_view path, std::string_view authority,
               const H2Fields& extra = {}, std::string_view body = {}, bool end = true);

  // The next frame, answering SETTINGS and PING as a client must and giving back the
  // window of every DATA frame (unless `give_window` is off); nullopt on close or timeout.
  std::optional<H2Frame> Next();
  // Reads frames until stream `id` ends (END_STREAM or RST_STREAM); nullopt when the
  // connection ended or the timeout passed first. Frames of other streams are kept.
  std::optional<H2Response> Await(uint32_t id);
  // Reads until the server ends the connection; true if it did within the timeout.
  bool AwaitClose();

  std::optional<uint32_t> goaway_error() const { return goaway_error_; }
  void set_give_window(bool give) { give_window_ = give; }
  const std::map<uint32_t, H2Response>& responses() const { return responses_; }

 private:
  bool ReadExactly(char* out, size_t n);
  void Note(const H2Frame& frame);

  int fd_ = -1;
  std::chrono::milliseconds timeout_;
  nghttp2_hd_deflater* deflater_ = nullptr;
  nghttp2_hd_inflater* inflater_ = nullptr;
  bool give_window_ = true;
  // What the server lets this client send (RFC 9113 §6.9).
  int64_t connection_window_ = 65535;
  int64_t initial_window_ = 65535;
  std::map<uint32_t, int64_t> stream_windows_;
  std::map<uint32_t, H2Response> responses_;
  std::optional<uint32_t> goaway_error_;
};

}  // namespace meshplug::agent::testing
