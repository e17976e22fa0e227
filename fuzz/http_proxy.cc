// The agent's HTTP/1.1 proxy end to end, with a hostile client and a hostile upstream: the
// input is what a client sends on one connection and what the upstream answers. The
// connection runs through the built-in chains and a Lua plugin that uses the request API.
//
// Findings: a crash or sanitizer report; a connection still open 3 s after the client
// finished (every limit here is ≤300 ms); a request still counted in flight after its
// connection ended; bytes sent to the client that are not well-formed HTTP/1.1 responses.
//
// Input: flags (1 byte: bit 0 inbound listener, bit 1 upstream closes after answering),
// then the client's bytes, then optionally kResponseMarker and the upstream's answer to
// each request (without it: a valid 200).
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/proxy_harness.h"

namespace {

constexpr std::string_view kResponseMarker = "\n@@upstream@@\n";
constexpr std::string_view kDefaultResponse = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

// Uses every part of the request API a plugin has, and answers some requests itself.
constexpr char kScript[] = R"lua(
request_body = "stream"
response_body = "stream"
function on_request(req, ctx)
  local n = 0
  for name, value in req.headers:each() do n = n + #name + #value end
  req.headers:set("x-header-bytes", tostring(n))
  req.headers:add("x-method", req.method)
  ctx.shared.path = req.path
  if req.path:find("^/local") then respond(403, {["x-why"] = req.path}, "refused\n") end
  if req.headers:get("x-rewrite") then req.path = req.headers:get("x-rewrite") end
end
function on_request_body(req, ctx)
  if req.body then req.body = req.body:upper() end
end
function on_response(resp, ctx)
  resp.headers:set("x-path", ctx.shared.path)
  if resp.status == 418 then respond(200, {}, "teapot\n") end
end
function on_response_body(resp, ctx)
  if resp.body and resp.last then resp.body = resp.body .. "" end
end
)lua";

struct Target {
  meshplug::fuzz::ProxyRig rig;
  std::shared_ptr<const meshplug::agent::chains::ChainSet> chains;

  Target() {
    auto built = rig.Build(rig.Snapshot(kScript), nullptr);
    if (!built.ok() || !built->isolated.empty()) {
      meshplug::fuzz::Finding("http_proxy", "the chain set does not build", built.status().ToString());
    }
    chains = built->chains;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static Target* target = new Target();
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  meshplug::fuzz::ProxyRig::Exchange exchange{.inbound = (data[0] & 1) != 0,
                                              .request = input,
                                              .response = std::string(kDefaultResponse),
                                              .upstream_closes = (data[0] & 2) != 0};
  if (size_t marker = input.find(kResponseMarker); marker != std::string_view::npos) {
    exchange.request = input.substr(0, marker);
    exchange.response = std::string(input.substr(marker + kResponseMarker.size()));
  }
  const std::string received = target->rig.Run(target->chains, exchange);
  const bool framed_alone = exchange.request.find("HEAD") == std::string_view::npos &&
                            exchange.response.find("HTTP/1.1 1") == std::string::npos &&
                            exchange.response.find("HTTP/1.0 1") == std::string::npos;
  if (framed_alone) meshplug::fuzz::CheckResponses("http_proxy", received);
  return 0;
}
