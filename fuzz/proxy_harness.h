// What the proxy fuzz targets share: chain sets built as the agent builds them, and one
// client connection through the agent's HTTP proxy to an upstream that answers with given
// bytes, all on loopback and a socket pair within one process.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "agent/chains/chain_set.h"
#include "agent/chains/plugin_factory.h"
#include "common/stats.h"
#include "fuzz/finding.h"
#include "plugins/lua/options.h"

namespace meshplug::fuzz {

// Every limit of the proxy and of Lua is small (timeouts ≤300 ms), so that an input ends
// quickly and a connection open after kHangAfter is a hang, not a slow input.
class ProxyRig {
 public:
  ProxyRig();

  // The snapshot every input runs: the built-in chains, an outbound service "web.shop" and
  // the workload's own inbound service "app.shop", both answered by the rig's upstream;
  // with a non-empty `script`, the plugin "fuzz-script" first in both http chains.
  v1::Snapshot Snapshot(std::string_view script) const;
  absl::StatusOr<agent::chains::BuiltChainSet> Build(v1::Snapshot snapshot,
                                                     const agent::chains::ChainSet* previous) const;

  struct Exchange {
    bool inbound = false;      // through the inbound listener, else the outbound one
    std::string_view request;  // all the client sends before it half-closes
    std::string response;      // what the upstream writes for each read
    bool upstream_closes = false;  // after answering once, else it keeps the connection
  };
  // What the client received until the agent closed the connection. A finding when the
  // connection is still open kHangAfter after the client finished, or a request is still
  // counted in flight after it ended.
  std::string Run(std::shared_ptr<const agent::chains::ChainSet> chains, const Exchange& exchange);

 private:
  Stats stats_;
  plugins::builtin::BuiltinState state_{stats_};
  agent::chains::BuiltinModuleFactory builtins_;
  std::unique_ptr<agent::chains::ScriptFactory> scripts_;
  std::unique_ptr<agent::chains::ChainSetBuilder> builder_;
  int upstream_fd_ = -1;  // listening on 127.0.0.1 for the process's lifetime
  uint16_t upstream_port_ = 0;
};

// Checks that `bytes` are whole HTTP/1.1 responses, the last possibly cut short (a
// connection ends mid-response when the upstream broke). Not for answers to HEAD or with
// interim responses, which cannot be framed without the requests.
void CheckResponses(const char* target, std::string_view bytes);

}  // namespace meshplug::fuzz
