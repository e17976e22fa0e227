#include "agent/dns/dns_message.h"

#include <cctype>

namespace meshplug::agent::dns {
namespace {

constexpr size_t kHeader = 12;
constexpr uint32_t kTtlSeconds = 5;

uint16_t Read16(std::string_view p, size_t at) {
  return static_cast<uint16_t>((static_cast<uint8_t>(p[at]) << 8) | static_cast<uint8_t>(p[at + 1]));
}

void Put16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xff));
}

void Put32(std::string& out, uint32_t v) {
  Put16(out, static_cast<uint16_t>(v >> 16));
  Put16(out, static_cast<uint16_t>(v & 0xffff));
}

}  // namespace

std::optional<Question> ParseQuery(std::string_view p) {
  if (p.size() < kHeader + 5 || p.size() > 4096) return std::nullopt;  // EDNS queries exceed 512
  const uint16_t flags = Read16(p, 2);
  const bool response = flags & 0x8000;
  const unsigned opcode = (flags >> 11) & 0xf;
  if (response || opcode != 0 || Read16(p, 4) != 1 || Read16(p, 6) != 0 || Read16(p, 8) != 0) return std::nullopt;
  Question q;
  size_t at = kHeader;
  while (true) {
    if (at >= p.size()) return std::nullopt;
    const uint8_t len = static_cast<uint8_t>(p[at++]);
    if (len == 0) break;
    if (len > 63 || at + len > p.size()) return std::nullopt;  // a pointer (0xc0) or too long
    if (!q.name.empty()) q.name.push_back('.');
    for (size_t i = 0; i < len; ++i) q.name.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(p[at + i]))));
    at += len;
    if (q.name.size() > 253) return std::nullopt;
  }
  if (at + 4 > p.size()) return std::nullopt;
  q.type = Read16(p, at);
  q.klass = Read16(p, at + 2);
  return q;
}

std::string Respond(std::string_view query, uint8_t rcode, std::optional<uint32_t> ipv4) {
  // The question section ends where the name's terminator and type/class end.
  size_t end = kHeader;
  while (end < query.size() && query[end] != 0) end += 1 + static_cast<uint8_t>(query[end]);
  end += 1 + 4;
  std::string out(query.substr(0, 2));                 // the id
  const uint16_t rd = Read16(query, 2) & 0x0100;       // recursion desired, echoed
  Put16(out, static_cast<uint16_t>(0x8000 | 0x0400 | rd | 0x0080 | (rcode & 0xf)));  // QR, AA, RD, RA
  Put16(out, 1);                                       // one question
  Put16(out, ipv4 ? 1 : 0);                            // answers
  Put16(out, 0);
  Put16(out, 0);
  out.append(query.substr(kHeader, end - kHeader));
  if (ipv4) {
    Put16(out, 0xc00c);  // the name: a pointer to the question's
    Put16(out, kTypeA);
    Put16(out, kClassIn);
    Put32(out, kTtlSeconds);
    Put16(out, 4);
    Put32(out, *ipv4);
  }
  return out;
}

}  // namespace meshplug::agent::dns
