// The chain set: the four chains of plugin instances built from one snapshot.
//
// Immutable and shared by std::shared_ptr: a request or connection takes the pointer once
// when it starts and runs on that set to its end, so a swap never changes a chain under
// a running request. ActiveChainSet holds the current set; a new snapshot builds a whole
// new set (ChainSetBuilder) and replaces the pointer with one atomic store.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/proxy/limits.h"
#include "agent/chains/plugin_factory.h"
#include "meshplug/v1/snapshot.pb.h"
#include "plugins/api/plugin.h"
#include "agent/routing/mesh_view.h"
#include "common/chain_info.h"
#include "plugins/builtin/state.h"

namespace meshplug::agent::chains {

template <typename Plugin>
struct ChainEntry {
  std::string name;
  std::shared_ptr<Plugin> plugin;
  // HTTP chains: where the time of the plugin's request and response header steps goes
  // (meshplug_plugin_duration_seconds in the agent's Stats). Null for a step the plugin
  // does not have (HttpPlugin::has_request_header_step): the chain skips it.
  Stats::FixedHistogram* request_time = nullptr;
  Stats::FixedHistogram* response_time = nullptr;
  // HTTP chains: `plugin` when its header steps never suspend (called directly); null otherwise.
  plugins::ImmediateHttpPlugin* immediate = nullptr;
  // HTTP chains: the plugin has a request or a response body step.
  bool body_steps = false;
};
using HttpChain = std::vector<ChainEntry<plugins::HttpPlugin>>;
using TcpChain = std::vector<ChainEntry<plugins::TcpPlugin>>;

class ChainSet {
 public:
  struct Parts {
    std::shared_ptr<const routing::MeshView> mesh;
    // By direction: [0] outbound, [1] inbound.
    HttpChain http[2];
    TcpChain tcp[2];
    proxy::Limits limits;
  };
  explicit ChainSet(Parts parts);
  ~ChainSet();
  ChainSet(const ChainSet&) = delete;
  ChainSet& operator=(const ChainSet&) = delete;

  const std::string& version() const { return mesh().snapshot().version(); }
  const v1::Snapshot& snapshot() const { return mesh().snapshot(); }
  const routing::MeshView& mesh() const { return *parts_.mesh; }
  const HttpChain& http(bool inbound) const { return parts_.http[inbound]; }
  const TcpChain& tcp(bool inbound) const { return parts_.tcp[inbound]; }
  const proxy::Limits& limits() const { return parts_.limits; }
  const plugins::WorkloadIdentity& workload() const { return workload_; }

  // Chain sets alive in the process; old sets are freed once their last request ends.
  static int64_t Live() { return live_.load(); }

 private:
  Parts parts_;
  plugins::WorkloadIdentity workload_;
  static std::atomic<int64_t> live_;
};

// A new chain set, and what in it could not be built as the snapshot asked.
struct BuiltChainSet {
  std::shared_ptr<const ChainSet> chains;
  // One line per script plugin that did not load and was isolated: its previous version
  // runs in its place, or, with none, a stand-in that refuses the chain's requests (503)
  // and connections — a plugin that does not load is never silently skipped.
  std::vector<std::string> isolated;
};

// Builds chain sets from snapshots with the given plugin factories.
class ChainSetBuilder {
 public:
  // `scripts` may be null: a snapshot naming a script module then fails to build.
  ChainSetBuilder(const BuiltinFactory& builtins, const ScriptFactory* scripts,
                  plugins::builtin::BuiltinState& state, proxy::Limits defaults);

  // A complete new set, or the first error that makes one impossible (naming the chain and
  // module). A script that does not load fails only its own module (BuiltChainSet::isolated);
  // `previous` (the set running now, may be null) lends that module's last working instance.
  absl::StatusOr<BuiltChainSet> Build(v1::Snapshot snapshot, const ChainSet* previous) const;

 private:
  template <typename Plugin>
  absl::Status BuildChain(const google::protobuf::RepeatedPtrField<v1::ChainModule>& modules,
                          const ChainInfo& chain, const plugins::builtin::BuiltinEnv& env,
                          const ChainSet* previous, std::vector<ChainEntry<Plugin>>& out,
                          std::vector<std::string>& isolated) const;

  const BuiltinFactory& builtins_;
  const ScriptFactory* scripts_;
  plugins::builtin::BuiltinState& state_;
  proxy::Limits defaults_;
};

// The current chain set, read by every request and replaced by snapshots.
class ActiveChainSet {
 public:
  // `defaults` are the flags' limits, which hold until the first snapshot is applied.
  explicit ActiveChainSet(proxy::Limits defaults = {}) : defaults_(defaults) {}

  // nullptr until the first snapshot is applied.
  std::shared_ptr<const ChainSet> Get() const { return current_.load(std::memory_order_acquire); }
  // Returns the set it replaced.
  std::shared_ptr<const ChainSet> Swap(std::shared_ptr<const ChainSet> next) {
    return current_.exchange(std::move(next), std::memory_order_acq_rel);
  }
  // The limits of `set` (from Get()), or the flags' before any snapshot.
  proxy::Limits LimitsOf(const ChainSet* set) const { return set ? set->limits() : defaults_; }

 private:
  const proxy::Limits defaults_;
  std::atomic<std::shared_ptr<const ChainSet>> current_;
};

}  // namespace meshplug::agent::chains
