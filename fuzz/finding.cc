#include "fuzz/finding.h"

#include <cstdio>
#include <cstdlib>

namespace meshplug::fuzz {

void Finding(const char* target, const std::string& what, const std::string& detail) {
  std::fprintf(stderr, "%s: %s\n%s\n", target, what.c_str(), detail.c_str());
  std::abort();
}

}  // namespace meshplug::fuzz
