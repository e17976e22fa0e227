#include "common/secret.h"

#include <openssl/rand.h>

#include <cstdlib>

#include "common/strings.h"

namespace meshplug {

std::string SecretBytes(size_t n) {
  std::string out(n, '\0');
  // Without entropy nothing secret can be made; carrying on would hand out guessable keys.
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) std::abort();
  return out;
}

std::string SecretHex(size_t n) { return HexOf(SecretBytes(n)); }

}  // namespace meshplug
