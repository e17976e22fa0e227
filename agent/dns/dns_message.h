// The little of DNS (RFC 1035) the agent answers itself: one question, A and AAAA for mesh
// names, NXDOMAIN for mesh names that do not exist. Everything else goes to the upstream
// resolver untouched.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace meshplug::agent::dns {

inline constexpr uint16_t kTypeA = 1;
inline constexpr uint16_t kTypeAaaa = 28;
inline constexpr uint16_t kClassIn = 1;
inline constexpr uint8_t kNoError = 0;
inline constexpr uint8_t kServFail = 2;
inline constexpr uint8_t kNxDomain = 3;

struct Question {
  std::string name;  // lower-case, without the trailing dot
  uint16_t type = 0;
  uint16_t klass = 0;
};

// The question of a standard query with exactly one; nullopt for anything else (a
// response, another opcode, several questions, a malformed or compressed name).
std::optional<Question> ParseQuery(std::string_view packet);

// The response to `query` (a packet ParseQuery accepted): `rcode`, and an A record for
// `ipv4` (host order) when given, with a short TTL so a changed address is seen soon.
std::string Respond(std::string_view query, uint8_t rcode, std::optional<uint32_t> ipv4 = std::nullopt);

}  // namespace meshplug::agent::dns
