// The agent maps only the shared libraries third_party/agent_static.bzl means it to, and
// no gRPC library: each one mapped costs every agent memory.
#include <gtest/gtest.h>

#include <cstdio>
#include <set>
#include <string>

namespace {

std::set<std::string> Needed(const std::string& binary) {
  std::set<std::string> needed;
  FILE* readelf = popen(("readelf -d " + binary).c_str(), "r");
  if (!readelf) return needed;
  char line[512];
  while (fgets(line, sizeof line, readelf)) {
    const std::string text(line);
    const size_t open = text.find("(NEEDED)") == std::string::npos ? std::string::npos : text.find('[');
    const size_t close = text.find(']', open);
    if (open != std::string::npos && close != std::string::npos) needed.insert(text.substr(open + 1, close - open - 1));
  }
  pclose(readelf);
  return needed;
}

TEST(AgentBinary, MapsOnlyTheSharedLibrariesItMust) {
  const std::set<std::string> allowed = {"liblua5.4.so.0", "libnghttp2.so.14", "libssl.so.3",    "libcrypto.so.3",
                                         "libre2.so.9",    "libjemalloc.so.2", "libstdc++.so.6", "libm.so.6",
                                         "libgcc_s.so.1",  "libc.so.6",        "ld-linux-x86-64.so.2"};
  const std::set<std::string> needed = Needed("agent/agent");
  // The listing was read: the agent speaks TLS.
  ASSERT_TRUE(needed.count("libssl.so.3")) << "readelf -d agent/agent listed no libssl";
  for (const std::string& library : needed) {
    EXPECT_TRUE(allowed.count(library)) << library << " is mapped into every agent";
  }
}

}  // namespace
