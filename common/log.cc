#include "common/log.h"

#include "common/strings.h"

#include <atomic>
#include <cstdio>
#include <mutex>

namespace meshplug::log {
namespace {

std::atomic<Level> g_level{Level::kInfo};
std::mutex g_mu;
std::string g_component = "meshplug";

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

void Write(Level level, std::string_view msg, Fields fields) {
  if (level < g_level.load()) return;
  std::string line = "{\"ts\":\"" + NowRfc3339Millis() + "\",\"level\":\"" + std::string(LevelName(level)) + "\"";
  {
    std::lock_guard lock(g_mu);
    line += ",\"component\":" + JsonQuote(g_component);
  }
  line += ",\"msg\":" + JsonQuote(msg);
  for (const auto& [k, v] : fields) line += "," + JsonQuote(k) + ":" + JsonQuote(v);
  line += "}\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace meshplug::log
