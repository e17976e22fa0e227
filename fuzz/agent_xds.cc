// The agent's side of xDS with a hostile control plane: responses of either variant are
// merged, assembled into updates on a simulated clock, and each update is built into a
// chain set (Lua scripts included) on top of the previous one, as the agent applies them.
//
// Findings: a crash or sanitizer report; an update the assembler hands out while something
// it references is missing; an applied update that is not what then runs.
//
// Input: a flags byte (bit 0: delta, else state of the world), then responses, each a
// 2-byte big-endian length and that many bytes of a serialized DiscoveryResponse or
// DeltaDiscoveryResponse. The clock advances 2 ms per response.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "agent/chains/chain_set.h"
#include "agent/chains/script_runtime.h"
#include "agent/xds/protocol.h"
#include "agent/xds/update_assembler.h"
#include "common/stats.h"
#include "fuzz/finding.h"

namespace {

using meshplug::fuzz::Finding;

using namespace meshplug;
using namespace meshplug::agent::xds;
using std::chrono::milliseconds;

// Builds chain sets as the agent does, with small Lua limits so that one input stays fast.
struct Builder {
  Stats stats;
  plugins::builtin::BuiltinState state{stats};
  agent::chains::BuiltinModuleFactory builtins;
  std::unique_ptr<agent::chains::ScriptFactory> scripts = agent::chains::MakeScriptRuntime(
      plugins::lua::LuaLimits{.instructions_per_call = 100'000,
                              .time_per_call = milliseconds(50),
                              .memory_bytes = 4 << 20,
                              .http_calls_per_call = 2,
                              .http_call_max_timeout = milliseconds(100),
                              .http_call_max_response_body = 64 << 10},
      64 << 20);
  agent::chains::ChainSetBuilder builder{builtins, scripts.get(), state, agent::proxy::Limits{}};
};

Builder& TheBuilder() {
  static Builder* builder = new Builder();
  return *builder;
}

template <typename Ops>
void Run(std::string_view input) {
  Builder& b = TheBuilder();
  UpdateAssembler assembler(AssemblerTiming{milliseconds(1), milliseconds(100), milliseconds(500), milliseconds(2000)});
  assembler.StartStream();
  std::shared_ptr<const agent::chains::ChainSet> running;
  Clock::time_point now = Clock::time_point() + std::chrono::hours(1);

  auto poll_until = [&](Clock::time_point until) {
    for (int i = 0; i < 64; ++i) {
      std::optional<Clock::time_point> at = assembler.NextDeadline();
      if (!at || *at > until) return;
      UpdateAssembler::Due due = assembler.Poll(*at);
      if (!due.update) continue;
      const std::vector<std::string> missing = due.update->resources.Missing(/*endpoints=*/false);
      if (!missing.empty()) Finding("agent_xds", "an update was handed out with references missing", missing.front());
      auto built = b.builder.Build(due.update->snapshot, running.get());
      absl::StatusOr<std::vector<std::string>> result =
          built.ok() ? absl::StatusOr<std::vector<std::string>>(built->isolated) : built.status();
      if (built.ok()) running = built->chains;
      assembler.Applied(*due.update, result);
      if (built.ok() && assembler.running().size() != due.update->resources.size()) {
        Finding("agent_xds", "what runs is not the update that was applied", due.update->snapshot.version());
      }
    }
  };

  while (input.size() >= 2) {
    const size_t length = (static_cast<uint8_t>(input[0]) << 8) | static_cast<uint8_t>(input[1]);
    input.remove_prefix(2);
    std::string_view bytes = input.substr(0, length);
    input.remove_prefix(bytes.size());
    typename Ops::Resp response;
    if (!response.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) continue;
    now += milliseconds(2);
    assembler.OnResponse(Ops::Type(response), Ops::Nonce(response), Ops::Version(response),
                         [&](ResourceSet& into) { return Ops::Merge(response, into); }, now);
    poll_until(now);
  }
  poll_until(now + std::chrono::seconds(10));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] & 1) {
    Run<DeltaOps>(input);
  } else {
    Run<SotwOps>(input);
  }
  return 0;
}
