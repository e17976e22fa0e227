#include "plugins/lua/options.h"

#include <cstdio>

namespace meshplug::plugins::lua {
namespace {

void AppendJsonString(std::string& out, std::string_view text) {
  out += '"';
  for (const char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof(escaped), "\\u%04x", c);
          out += escaped;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

}  // namespace

std::string_view LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "info";
}

LogSink StderrJsonLog() {
  return [](LogLevel level, std::string_view plugin, std::string_view message) {
    std::string line = "{\"level\":";
    AppendJsonString(line, LogLevelName(level));
    line += ",\"plugin\":";
    AppendJsonString(line, plugin);
    line += ",\"msg\":";
    AppendJsonString(line, message);
    line += "}\n";
    std::fwrite(line.data(), 1, line.size(), stderr);
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
