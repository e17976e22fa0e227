#include "common/log.h"

#include "common/strings.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>

namespace meshplug::log {
namespace {

std::atomic<Level> g_level{Level::kInfo};
std::mutex g_mu;
std::string g_component = "meshplug";  // under g_mu

using Clock = std::chrono::steady_clock;

// Lines with the same message: at most kLinesPerWindow per kWindow; the next one let
// through says how many were dropped.
struct Repeats {
  Clock::time_point window_start;
  int lines = 0;
  uint64_t dropped = 0;
};
std::map<std::string, Repeats, std::less<>> g_repeats;  // under g_mu
int g_lines_per_window = 10;                            // under g_mu
Clock::duration g_window = std::chrono::seconds(10);    // under g_mu

// Whether a line with `msg` may be written now; `dropped` gets how many like it were
// dropped since the last one written.
bool Admit(std::string_view msg, uint64_t& dropped) {
  const auto now = Clock::now();
  auto it = g_repeats.find(msg);
  if (it == g_repeats.end()) {
    // Messages are fixed texts; a bound keeps a caller that builds them from data harmless.
    if (g_repeats.size() >= kMaxTrackedMessages) g_repeats.clear();
    it = g_repeats.emplace(std::string(msg), Repeats{now}).first;
  }
  Repeats& r = it->second;
  if (now - r.window_start >= g_window) {
    r.window_start = now;
    r.lines = 0;
  }
  if (r.lines >= g_lines_per_window) {
    ++r.dropped;
    return false;
  }
  ++r.lines;
  dropped = r.dropped;
  r.dropped = 0;
  return true;
}

std::string Field(std::string_view value) { return JsonQuote(Truncated(value, kMaxFieldBytes)); }

}  // namespace

std::string_view LevelName(Level level) {
  switch (level) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
  }
  return "info";
}

void SetLevel(Level level) { g_level = level; }

void SetRepeatLimit(int lines, std::chrono::milliseconds window) {
  std::lock_guard lock(g_mu);
  g_lines_per_window = lines;
  g_window = window;
  g_repeats.clear();
}

bool ParseLevel(std::string_view name, Level* out) {
  for (Level l : {Level::kDebug, Level::kInfo, Level::kWarn, Level::kError}) {
    if (name == LevelName(l)) return *out = l, true;
  }
  return false;
}

void SetComponent(std::string component) {
  std::lock_guard lock(g_mu);
  g_component = std::move(component);
}

void Write(Level level, std::string_view msg, Fields fields, std::string_view repeat_key) {
  if (level < g_level.load()) return;
  std::string line = "{\"ts\":\"" + NowRfc3339Millis() + "\",\"level\":\"" + std::string(LevelName(level)) + "\"";
  uint64_t dropped = 0;
  {
    std::lock_guard lock(g_mu);
    if (!Admit(repeat_key.empty() ? msg : repeat_key, dropped)) return;
    line += ",\"component\":" + JsonQuote(g_component);
  }
  line += ",\"msg\":" + Field(msg);
  for (const auto& [k, v] : fields) line += "," + JsonQuote(k) + ":" + Field(v);
  if (dropped > 0) line += ",\"dropped_similar\":\"" + std::to_string(dropped) + "\"";
  line += "}\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace meshplug::log
