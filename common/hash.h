#pragma once

#include <google/protobuf/message.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace meshplug {

// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(std::string_view data);

// FNV-1a: the same value in every process and build (std::hash need not be), for choices
// that control-plane replicas must make alike.
uint64_t StableHash(std::string_view data);

// Serialization with map entries in a fixed order, so equal messages give equal bytes
// (the basis of content versions and of sharing identical encodings).
std::string DeterministicBytes(const google::protobuf::Message& msg);

}  // namespace meshplug
