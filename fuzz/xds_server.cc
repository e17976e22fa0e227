// The control plane's side of an ADS stream with a hostile agent: the node identity of the
// first request, then any sequence of requests (subscriptions, ACKs, NACKs, stale nonces)
// of either variant interleaved with new configurations, as the stream reactor drives
// SotwProtocol and DeltaProtocol.
//
// Findings: a crash or sanitizer report; a stream that keeps producing responses with
// nothing new to send; a response of a type the server does not serve (or meshplug's to
// a stream with an xDS token, which reads Envoy's only); a delta response
// that both updates and removes one name; a response larger than the subscription bound;
// response bytes that do not parse as the protocol's response.
//
// Input: a flags byte (bit 0: delta, else state of the world), then steps, each a byte
// that says what it is (even: a request, odd: a new configuration) and a 2-byte
// big-endian length with that many bytes: a serialized request, or a serialized
// meshplug.v1.Snapshot for the configuration. Responses are drained after every step.
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "common/xds_types.h"
#include "control_plane/xds/agent_registry.h"
#include "control_plane/xds/envoy_resources.h"
#include "control_plane/xds/node_identity.h"
#include "control_plane/xds/resources.h"
#include "control_plane/xds/response_bytes.h"
#include "control_plane/xds/stream_protocol.h"
#include "fuzz/finding.h"

namespace {

using meshplug::fuzz::Finding;

using namespace meshplug;
using namespace meshplug::control_plane::xds;

void CheckType(const std::string& type, bool envoy_types_only) {
  if (IsEnvoyType(type)) return;
  if (!xds_types::FindType(type)) Finding("xds_server", "a response of a type not served", type);
  if (envoy_types_only) Finding("xds_server", "meshplug's type to a stream with an xDS token", type);
}

void Check(const SotwProtocol::Response& r, bool envoy_types_only) {
  CheckType(r.type_url(), envoy_types_only);
  if (static_cast<size_t>(r.resources_size()) > kMaxSubscribedNames) Finding("xds_server", "a response beyond the subscription bound");
}

void Check(const DeltaProtocol::Response& r, bool envoy_types_only) {
  CheckType(r.type_url(), envoy_types_only);
  if (static_cast<size_t>(r.resources_size()) > kMaxSubscribedNames) Finding("xds_server", "a response beyond the subscription bound");
  std::set<std::string> updated;
  for (const auto& resource : r.resources()) updated.insert(resource.name());
  for (const std::string& removed : r.removed_resources()) {
    if (updated.count(removed)) Finding("xds_server", "a delta response updates and removes one name", removed);
  }
}

template <typename Protocol>
void Run(std::string_view input) {
  AgentRegistry registry;
  ResourceInterner interner;
  std::optional<Protocol> protocol;
  std::string agent = "shop/web";
  bool envoy_types_only = false;
  auto drain = [&] {
    if (!protocol) return;
    for (int i = 0; i < 64; ++i) {
      grpc::ByteBuffer bytes;
      if (!protocol->NextResponse(&bytes)) return;
      typename Protocol::Response response;
      if (!ParseFrom(bytes, response)) Finding("xds_server", "a response that does not parse");
      Check(response, envoy_types_only);
    }
    Finding("xds_server", "the stream keeps producing responses with nothing new to send");
  };

  while (input.size() >= 3) {
    const bool configuration = static_cast<uint8_t>(input[0]) & 1;
    const size_t length = (static_cast<uint8_t>(input[1]) << 8) | static_cast<uint8_t>(input[2]);
    input.remove_prefix(3);
    std::string_view bytes = input.substr(0, length);
    input.remove_prefix(bytes.size());
    if (configuration) {
      v1::Snapshot snapshot;
      if (!snapshot.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())) || !protocol) continue;
      protocol->SetResources(ToResources(snapshot, interner));
    } else {
      typename Protocol::Request request;
      if (!request.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) continue;
      if (!protocol) {
        // As the reactor does: the first request identifies the agent.
        auto workload = WorkloadFromNode(request.node());
        if (!workload.ok()) continue;
        agent = AgentId(*workload);
        registry.Connected(agent, Protocol::kName, "fuzz");
        // A node with a token stands for an xDS token's stream: Envoy's types only.
        envoy_types_only = request.node().metadata().fields().count("token") > 0;
        protocol.emplace(registry, agent, envoy_types_only);
      }
      protocol->Handle(request);
    }
    drain();
  }
  registry.List();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] & 1) {
    Run<DeltaProtocol>(input);
  } else {
    Run<SotwProtocol>(input);
  }
  return 0;
}
