// Lua plugins by a careless or hostile author: the input is a script, loaded as the agent
// loads a new Plugin version (on top of a chain set where an earlier version runs) and
// run on requests through the proxy: a GET, a POST with a chunked body, a local path.
//
// Findings: a crash or sanitizer report (the host API is C++ driven by the script);
// a request or load that outlives the sandbox's limits (every call is capped at 50 ms
// and 4 MiB, so a connection still open after 3 s is a hang); a malformed response.
//
// Input: the script's source.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/proxy_harness.h"

namespace {

using meshplug::fuzz::ProxyRig;

constexpr char kEarlierVersion[] = "function on_request(req, ctx) req.headers:set('x-v', '1') end";

constexpr std::string_view kRequests =
    "GET /get?x=1 HTTP/1.1\r\nHost: web.shop\r\nx-token: abc\r\nAccept: */*\r\n\r\n"
    "POST /post HTTP/1.1\r\nHost: web.shop\r\nTransfer-Encoding: chunked\r\n\r\n"
    "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    "GET /local/../status HTTP/1.1\r\nHost: web.shop\r\n\r\n";

constexpr char kResponse[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
    "3\r\nabc\r\n0\r\n\r\n";

struct Target {
  ProxyRig rig;
  std::shared_ptr<const meshplug::agent::chains::ChainSet> earlier;

  Target() {
    auto built = rig.Build(rig.Snapshot(kEarlierVersion), nullptr);
    if (!built.ok() || !built->isolated.empty()) {
      meshplug::fuzz::Finding("lua_script", "the earlier version does not build", built.status().ToString());
    }
    earlier = built->chains;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Target* target = new Target();
  std::string_view script(reinterpret_cast<const char*>(data), size);
  if (script.empty()) return 0;
  meshplug::v1::Snapshot snapshot = target->rig.Snapshot(script);
  snapshot.mutable_scripts(0)->set_name("fuzz-script@2");
  for (auto* chain : {snapshot.mutable_chains()->mutable_outbound_http(), snapshot.mutable_chains()->mutable_inbound_http()}) {
    for (auto& module : *chain) {
      if (module.has_script()) module.set_script("fuzz-script@2");
    }
  }
  // A script that does not load leaves the earlier version running in its place.
  auto built = target->rig.Build(std::move(snapshot), target->earlier.get());
  if (!built.ok()) meshplug::fuzz::Finding("lua_script", "a script failed the whole chain set", built.status().ToString());
  const std::string received = target->rig.Run(built->chains, ProxyRig::Exchange{.request = kRequests, .response = kResponse});
  meshplug::fuzz::CheckResponses("lua_script", received);
  return 0;
}
