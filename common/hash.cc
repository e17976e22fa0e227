#include "common/hash.h"

#include "common/strings.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <openssl/sha.h>

namespace meshplug {

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return HexOf(std::string_view(reinterpret_cast<const char*>(digest), sizeof digest));
}

uint64_t StableHash(std::string_view data) {
  uint64_t hash = 0xcbf29ce484222325;
  for (unsigned char c : data) hash = (hash ^ c) * 0x100000001b3;
  return hash;
}

std::string DeterministicBytes(const google::protobuf::Message& msg) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    msg.SerializeToCodedStream(&coded);
  }
  return out;
}

}  // namespace meshplug
