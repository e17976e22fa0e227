#include "plugins/lua/options.h"

#include "common/log.h"

namespace meshplug::plugins::lua {
// The process's JSON log, with the plugin's name as a field; a plugin's lines share one
// repeat limit, whatever their text.
LogSink StderrJsonLog() {
  return [](LogLevel level, std::string_view plugin, std::string_view message) {
    log::Write(level, message, {{"plugin", plugin}}, std::string("plugin ") + std::string(plugin));
  };
}

bool PluginStats::Add(std::string_view name, int64_t n) {
  std::lock_guard lock(mu_);
  auto it = counters_.find(name);
  if (it == counters_.end()) {
    if (counters_.size() >= kMaxCounters) return false;
    it = counters_.emplace(std::string(name), 0).first;
  }
  it->second += n;
  return true;
}

std::map<std::string, int64_t> PluginStats::counters() const {
  std::lock_guard lock(mu_);
  return {counters_.begin(), counters_.end()};
}

}  // namespace meshplug::plugins::lua
