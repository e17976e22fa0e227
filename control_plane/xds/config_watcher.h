// What the ADS server needs from wherever agents' resources come from (as
// go-control-plane's server takes a ConfigWatcher): the latest resources of an agent, and
// a callback for each new version. SnapshotCache implements it.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "control_plane/xds/resources.h"

namespace meshplug::control_plane::xds {

using Resources = std::shared_ptr<const AgentResources>;

class ConfigWatcher {
 public:
  using Callback = std::function<void(const Resources&)>;

  virtual ~ConfigWatcher() = default;
  // nullptr when the agent has none yet.
  virtual Resources Get(const std::string& agent) const = 0;
  // `cb` runs with every new version of `agent`'s resources until the handle is dropped;
  // once dropping returns, `cb` is not running and will not run again.
  virtual std::shared_ptr<void> Watch(const std::string& agent, Callback cb) = 0;
};

}  // namespace meshplug::control_plane::xds
