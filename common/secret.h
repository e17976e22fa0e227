// Unpredictable bytes for keys and tokens (OpenSSL's CSPRNG, not the per-thread generator
// of random.h).
#pragma once

#include <cstddef>
#include <string>

namespace meshplug {

std::string SecretBytes(size_t n);
// `n` secret bytes as lower-case hex.
std::string SecretHex(size_t n);

}  // namespace meshplug
