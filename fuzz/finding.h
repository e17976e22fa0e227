// How a fuzz target reports what it checks beyond sanitizers: a message on stderr, then
// abort(), so that libFuzzer keeps the input and the replay test fails on it.
#pragma once

#include <string>

namespace meshplug::fuzz {

[[noreturn]] void Finding(const char* target, const std::string& what, const std::string& detail = "");

}  // namespace meshplug::fuzz
