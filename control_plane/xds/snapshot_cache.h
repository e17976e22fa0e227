// The latest resources of every agent, and who is waiting for them: what the controller
// publishes and the ADS server follows.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "control_plane/xds/config_watcher.h"
#include "control_plane/xds/resources.h"

namespace meshplug::control_plane::xds {

class SnapshotCache final : public ConfigWatcher {
 public:
  // Replaces an agent's resources. Watchers run (on this thread) only when the snapshot
  // version changed; returns whether it did.
  bool Set(const std::string& agent, Resources resources);
  void Remove(const std::string& agent);
  Resources Get(const std::string& agent) const override;
  std::shared_ptr<void> Watch(const std::string& agent, Callback cb) override;

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
