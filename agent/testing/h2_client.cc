#include "agent/testing/h2_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace meshplug::agent::testing {
namespace {

using Clock = std::chrono::steady_clock;

void PutU32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}

uint32_t GetU32(std::string_view in) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(in[i]);
  return v;
}

}  // namespace

std::string H2FrameBytes(uint8_t type, uint8_t flags, uint32_t stream, std::string_view payload) {
  std::string out;
  const uint32_t length = static_cast<uint32_t>(payload.size());
  out.push_back(static_cast<char>((length >> 16) & 0xff));
  out.push_back(static_cast<char>((length >> 8) & 0xff));
  out.push_back(static_cast<char>(length & 0xff));
  out.push_back(static_cast<char>(type));
  out.push_back(static_cast<char>(flags));
  PutU32(out, stream & 0x7fffffff);
  out.append(payload);
  return out;
}

std::string H2SettingsFrame(const H2Settings& settings) {
  std::string payload;
  for (const auto& [id, value] : settings) {
    payload.push_back(static_cast<char>(id >> 8));
    payload.push_back(static_cast<char>(id & 0xff));
    PutU32(payload, value);
  }
  return H2FrameBytes(kH2Settings, 0, 0, payload);
}

std::string H2WindowUpdate(uint32_t stream, uint32_t increment) {
  std::string payload;
  PutU32(payload, increment);
  return H2FrameBytes(kH2WindowUpdate, 0, stream, payload);
}

std::string H2RstStream(uint32_t stream, uint32_t error) {
  std::string payload;
  PutU32(payload, error);
  return H2FrameBytes(kH2RstStream, 0, stream, payload);
}

std::string H2Response::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (n == name) return v;
  }
  return "";
}

H2Client::H2Client(uint16_t port, const H2Settings& settings, std::chrono::milliseconds timeout)
    : timeout_(timeout) {
  nghttp2_hd_deflate_new(&deflater_, 4096);
  nghttp2_hd_inflate_new(&inflater_);
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (fd >= 0) close(fd);
    return;
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fd_ = fd;
  std::string preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  preface += H2SettingsFrame(settings);
  Send(preface);
}

H2Client::~H2Client() {
  if (fd_ >= 0) close(fd_);
  nghttp2_hd_deflate_del(deflater_);
  nghttp2_hd_inflate_del(inflater_);
}

bool H2Client::Send(std::string_view bytes) {
  const Clock::time_point deadline = Clock::now() + timeout_;
  while (!bytes.empty() && fd_ >= 0) {
    pollfd p{fd_, POLLOUT, 0};
    const int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
    if (left <= 0 || poll(&p, 1, left) <= 0) return false;
    const ssize_t n = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return bytes.empty();
}

std::string H2Client::Encode(const H2Fields& fields) {
  std::vector<nghttp2_nv> nva;
  for (const auto& [name, value] : fields) {
    nva.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                   reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
                   NGHTTP2_NV_FLAG_NONE});
  }
  std::string out(nghttp2_hd_deflate_bound(deflater_, nva.data(), nva.size()), '\0');
  const ssize_t n = nghttp2_hd_deflate_hd(deflater_, reinterpret_cast<uint8_t*>(out.data()), out.size(), nva.data(),
                                          nva.size());
  out.resize(n < 0 ? 0 : static_cast<size_t>(n));
  return out;
}

bool H2Client::Request(uint32_t id, std::string_view method, std::string_view path, std::string_view authority,
                       const H2Fields& extra, std::string_view body, bool end) {
  H2Fields fields{{":method", std::string(method)},
                  {":scheme", "http"},
                  {":path", std::string(path)},
                  {":authority", std::string(authority)}};
  fields.insert(fields.end(), extra.begin(), extra.end());
  const bool headers_end = end && body.empty();
  if (!Send(H2FrameBytes(kH2Headers, kH2EndHeaders | (headers_end ? kH2EndStream : 0), id, Encode(fields)))) {
    return false;
  }
  stream_windows_.try_emplace(id, initial_window_);
  while (!body.empty()) {
    // DATA frames of at most 16 KiB, the default SETTINGS_MAX_FRAME_SIZE.
    const int64_t room = std::min({connection_window_, stream_windows_[id], int64_t{16384}});
    if (room <= 0) {
      if (!Next()) return false;
      continue;
    }
    const std::string_view piece = body.substr(0, static_cast<size_t>(room));
    body.remove_prefix(piece.size());
    connection_window_ -= static_cast<int64_t>(piece.size());
    stream_windows_[id] -= static_cast<int64_t>(piece.size());
    if (!Send(H2FrameBytes(kH2Data, end && body.empty() ? kH2EndStream : 0, id, piece))) return false;
  }
  return true;
}

bool H2Client::ReadExactly(char* out, size_t n) {
  const Clock::time_point deadline = Clock::now() + timeout_;
  while (n > 0) {
    pollfd p{fd_, POLLIN, 0};
    const int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
    if (left <= 0 || poll(&p, 1, left) <= 0) return false;
    const ssize_t got = recv(fd_, out, n, 0);
    if (got <= 0) return false;
    out += got;
    n -= static_cast<size_t>(got);
  }
  return true;
}

std::optional<H2Frame> H2Client::Next() {
  if (fd_ < 0) return std::nullopt;
  char head[9];
  if (!ReadExactly(head, sizeof head)) return std::nullopt;
  H2Frame frame;
  const size_t length = (static_cast<uint8_t>(head[0]) << 16) | (static_cast<uint8_t>(head[1]) << 8) |
                        static_cast<uint8_t>(head[2]);
  frame.type = static_cast<uint8_t>(head[3]);
  frame.flags = static_cast<uint8_t>(head[4]);
  frame.stream = GetU32(std::string_view(head + 5, 4)) & 0x7fffffff;
  frame.payload.resize(length);
  if (length > 0 && !ReadExactly(frame.payload.data(), length)) return std::nullopt;
  Note(frame);
  return frame;
}

void H2Client::Note(const H2Frame& frame) {
  switch (frame.type) {
    case kH2Settings:
      if (frame.flags & kH2Ack) break;
      for (size_t at = 0; at + 6 <= frame.payload.size(); at += 6) {
        const uint16_t id = static_cast<uint16_t>((static_cast<uint8_t>(frame.payload[at]) << 8) |
                                                  static_cast<uint8_t>(frame.payload[at + 1]));
        if (id != 0x4) continue;  // SETTINGS_INITIAL_WINDOW_SIZE changes every stream's window
        const int64_t value = GetU32(std::string_view(frame.payload).substr(at + 2, 4));
        for (auto& [stream, window] : stream_windows_) window += value - initial_window_;
        initial_window_ = value;
      }
      Send(H2FrameBytes(kH2Settings, kH2Ack, 0, ""));
      break;
    case kH2WindowUpdate:
      if (frame.payload.size() >= 4) {
        const int64_t increment = GetU32(frame.payload) & 0x7fffffff;
        if (frame.stream == 0) {
          connection_window_ += increment;
        } else {
          stream_windows_.try_emplace(frame.stream, initial_window_).first->second += increment;
        }
      }
      break;
    case kH2Ping:
      if (!(frame.flags & kH2Ack)) Send(H2FrameBytes(kH2Ping, kH2Ack, 0, frame.payload));
      break;
    case kH2Goaway:
      if (frame.payload.size() >= 8) goaway_error_ = GetU32(std::string_view(frame.payload).substr(4, 4));
      break;
    case kH2RstStream:
      if (frame.payload.size() >= 4) responses_[frame.stream].reset = GetU32(frame.payload);
      break;
    case kH2Headers:
    case kH2Continuation: {
      // Every block is decoded, in order, to keep the HPACK state (no padding or priority
      // from the agent).
      H2Response& response = responses_[frame.stream];
      const uint8_t* in = reinterpret_cast<const uint8_t*>(frame.payload.data());
      size_t left = frame.payload.size();
      while (true) {
        nghttp2_nv nv;
        int flags = 0;
        const ssize_t used = nghttp2_hd_inflate_hd2(inflater_, &nv, &flags, in, left, (frame.flags & kH2EndHeaders) != 0);
        if (used < 0) break;
        in += used;
        left -= static_cast<size_t>(used);
        if (flags & NGHTTP2_HD_INFLATE_EMIT) {
          std::string name(reinterpret_cast<const char*>(nv.name), nv.namelen);
          std::string value(reinterpret_cast<const char*>(nv.value), nv.valuelen);
          if (name == ":status") {
            // A 1xx is not the response.
            if (value[0] != '1') response.status = std::stoi(value);
          } else {
            response.headers.emplace_back(std::move(name), std::move(value));
          }
        }
        if (flags & NGHTTP2_HD_INFLATE_FINAL) {
          nghttp2_hd_inflate_end_headers(inflater_);
          break;
        }
        if (used == 0 && left == 0) break;
      }
      if (frame.flags & kH2EndStream) response.ended = true;
      break;
    }
    case kH2Data:
      responses_[frame.stream].body += frame.payload;
      if (frame.flags & kH2EndStream) responses_[frame.stream].ended = true;
      if (give_window_ && !frame.payload.empty()) {
        Send(H2WindowUpdate(0, static_cast<uint32_t>(frame.payload.size())) +
             H2WindowUpdate(frame.stream, static_cast<uint32_t>(frame.payload.size())));
      }
      break;
    default:
      break;
  }
}

std::optional<H2Response> H2Client::Await(uint32_t id) {
  while (true) {
    auto it = responses_.find(id);
    if (it != responses_.end() && (it->second.ended || it->second.reset)) return it->second;
    if (!Next()) return std::nullopt;
  }
}

bool H2Client::AwaitClose() {
  const Clock::time_point deadline = Clock::now() + timeout_;
  while (Clock::now() < deadline) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 100) < 0) return false;
    if (!(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
    // Frames are read whole (and noted, GOAWAY included) until the end.
    if (!Next()) {
      char byte;
      const ssize_t n = recv(fd_, &byte, 1, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN)) return true;
    }
  }
  return false;
}

}  // namespace meshplug::agent::testing
