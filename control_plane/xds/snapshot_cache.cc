#include "control_plane/xds/snapshot_cache.h"

#include <vector>

namespace meshplug::control_plane::xds {

bool SnapshotCache::Set(const std::string& agent, Resources resources) {
  std::vector<std::shared_ptr<Watcher>> to_call;
  {
    std::lock_guard lock(mu_);
    auto& slot = resources_[agent];
    if (slot && slot->version == resources->version) return false;
    slot = resources;
    auto [begin, end] = watchers_.equal_range(agent);
    for (auto it = begin; it != end; ++it) to_call.push_back(it->second);
  }
  // Outside our lock: a watcher may call Get().
  for (const auto& w : to_call) {
    std::lock_guard lock(w->mu);
    if (w->alive) w->cb(resources);
  }
  return true;
}

void SnapshotCache::Remove(const std::string& agent) {
  std::lock_guard lock(mu_);
  resources_.erase(agent);
}

Resources SnapshotCache::Get(const std::string& agent) const {
  std::lock_guard lock(mu_);
  auto it = resources_.find(agent);
  return it == resources_.end() ? nullptr : it->second;
}

std::shared_ptr<void> SnapshotCache::Watch(const std::string& agent, Callback cb) {
  auto w = std::make_shared<Watcher>();
  w->cb = std::move(cb);
  std::multimap<std::string, std::shared_ptr<Watcher>>::iterator it;
  {
    std::lock_guard lock(mu_);
    it = watchers_.emplace(agent, w);
  }
  return std::shared_ptr<void>(nullptr, [this, w, it](void*) {
    {
      std::lock_guard lock(w->mu);  // waits for a running callback
      w->alive = false;
    }
    std::lock_guard lock(mu_);
    watchers_.erase(it);
  });
}

}  // namespace meshplug::control_plane::xds
