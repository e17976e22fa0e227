// JSON log lines on stderr: {"ts":"…","level":"info","component":"control-plane","msg":"…",…}.
//
// Bounded whatever callers pass: a field value (or message) longer than kMaxFieldBytes is
// cut with a note of how much was cut; lines with the same message beyond the repeat limit
// are dropped, and the next line written says how many ("dropped_similar"), so a flood of
// NACKs or plugin errors cannot flood the log.
#pragma once

#include <chrono>
#include <cstddef>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace meshplug::log {

enum class Level { kDebug, kInfo, kWarn, kError };

inline constexpr size_t kMaxFieldBytes = 2048;
inline constexpr size_t kMaxTrackedMessages = 1024;

// At most `lines` lines with the same message (or repeat key) per `window` (default 10
// per 10 s).
void SetRepeatLimit(int lines, std::chrono::milliseconds window);

// Lines below this level are dropped (default info).
void SetLevel(Level level);
// Parses "debug", "info", "warn", "error"; false if unknown.
bool ParseLevel(std::string_view name, Level* out);
// "debug", "info", "warn", "error".
std::string_view LevelName(Level level);
// Names the process in every line ("control-plane", "agent").
void SetComponent(std::string component);

using Fields = std::initializer_list<std::pair<std::string_view, std::string_view>>;

// `repeat_key` groups lines for the repeat limit (default: the message itself).
void Write(Level level, std::string_view msg, Fields fields = {}, std::string_view repeat_key = {});
inline void Info(std::string_view msg, Fields fields = {}) { Write(Level::kInfo, msg, fields); }
inline void Warn(std::string_view msg, Fields fields = {}) { Write(Level::kWarn, msg, fields); }
inline void Error(std::string_view msg, Fields fields = {}) { Write(Level::kError, msg, fields); }
inline void Debug(std::string_view msg, Fields fields = {}) { Write(Level::kDebug, msg, fields); }

}  // namespace meshplug::log
