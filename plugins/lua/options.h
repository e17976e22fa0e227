// Limits, logging and counters of Lua plugins: what the agent configures and reads.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "common/log.h"

namespace meshplug::plugins::lua {

struct LuaLimits {
  // VM instructions per phase call, counted in steps of LuaState::kHookInterval.
  uint64_t instructions_per_call = 1'000'000;
  // Lua running time per phase call. Waiting in http_call does not count.
  std::chrono::milliseconds time_per_call{100};
  // Per Lua state, i.e. per plugin version per worker thread, shared by its requests.
  size_t memory_bytes = 16 << 20;
  int http_calls_per_call = 8;
  std::chrono::milliseconds http_call_max_timeout{30'000};
  size_t http_call_max_response_body = 1 << 20;
};

// Script log levels are the process's (common/log.h).
using LogLevel = log::Level;

// Receives script logs (log(), print()) and runtime errors, with the plugin's name.
using LogSink = std::function<void(LogLevel, std::string_view plugin, std::string_view message)>;

// Writes one JSON object per line to stderr: {"level":..,"plugin":..,"msg":..}.
LogSink StderrJsonLog();

// Counters of one plugin, shared by all its states and threads.
class PluginStats {
 public:
  // Distinct counter names a script may create; more fail the call.
  static constexpr size_t kMaxCounters = 64;

  void CountError() { errors_.fetch_add(1, std::memory_order_relaxed); }
  uint64_t errors() const { return errors_.load(std::memory_order_relaxed); }

  // Adds n to the script counter `name`; false when that would exceed kMaxCounters.
  bool Add(std::string_view name, int64_t n);
  std::map<std::string, int64_t> counters() const;

 private:
  std::atomic<uint64_t> errors_{0};
  mutable std::mutex mu_;
  std::map<std::string, int64_t, std::less<>> counters_;
};

}  // namespace meshplug::plugins::lua
