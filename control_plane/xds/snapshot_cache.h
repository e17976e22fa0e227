// The latest resources of every agent, and who is waiting for them.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "control_plane/xds/resources.h"

namespace meshplug::control_plane::xds {

using Resources = std::shared_ptr<const AgentResources>;

class SnapshotCache {
 public:
  using Callback = std::function<void(const Resources&)>;

  // Replaces an agent's resources. Watchers run (on this thread) only when the snapshot
  // version changed; returns whether it did.
  bool Set(const std::string& agent, Resources resources);
  void Remove(const std::string& agent);
  Resources Get(const std::string& agent) const;

  // `cb` runs with every new version of `agent`'s resources until the handle is dropped;
  // once dropping returns, `cb` is not running and will not run again.
  std::shared_ptr<void> Watch(const std::string& agent, Callback cb);

 private:
  struct Watcher {
    std::mutex mu;
    bool alive = true;
    Callback cb;
  };
  mutable std::mutex mu_;
  std::map<std::string, Resources> resources_;
  std::multimap<std::string, std::shared_ptr<Watcher>> watchers_;
};

}  // namespace meshplug::control_plane::xds
