#include "common/strings.h"

#include <chrono>
#include <cstdio>
#include <ctime>

namespace meshplug {

namespace {

// `now` as RFC 3339 in UTC, with milliseconds or without.
std::string Rfc3339(std::chrono::system_clock::time_point now, bool millis) {
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  if (millis) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    n += std::snprintf(buf + n, sizeof buf - n, ".%03d", static_cast<int>(ms));
  }
  std::snprintf(buf + n, sizeof buf - n, "Z");
  return buf;
}

}  // namespace

std::string NowRfc3339() { return Rfc3339(std::chrono::system_clock::now(), false); }

std::string NowRfc3339Millis() { return Rfc3339(std::chrono::system_clock::now(), true); }

}  // namespace meshplug
