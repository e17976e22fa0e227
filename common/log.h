// JSON log lines on stderr: {"ts":"…","level":"info","component":"control-plane","msg":"…",…}.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace meshplug::log {

enum class Level { kDebug, kInfo, kWarn, kError };

// Lines below this level are dropped (default info).
void SetLevel(Level level);
// Parses "debug", "info", "warn", "error"; false if unknown.
bool ParseLevel(std::string_view name, Level* out);
// "debug", "info", "warn", "error".
std::string_view LevelName(Level level);
// Names the process in every line ("control-plane", "agent").
void SetComponent(std::string component);

using Fields = std::initializer_list<std::pair<std::string_view, std::string_view>>;

void Write(Level level, std::string_view msg, Fields fields = {});
inline void Info(std::string_view msg, Fields fields = {}) { Write(Level::kInfo, msg, fields); }
inline void Warn(std::string_view msg, Fields fields = {}) { Write(Level::kWarn, msg, fields); }
inline void Error(std::string_view msg, Fields fields = {}) { Write(Level::kError, msg, fields); }
inline void Debug(std::string_view msg, Fields fields = {}) { Write(Level::kDebug, msg, fields); }

}  // namespace meshplug::log
