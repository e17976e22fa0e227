// The parts of a workload's SPIFFE ID, "spiffe://<trust_domain>/ns/<namespace>/sa/<service_account>".
#pragma once

#include <string_view>

namespace meshplug {

// Empty when `id` has no such part.
inline std::string_view SpiffeNamespace(std::string_view id) {
  const size_t ns = id.find("/ns/");
  const size_t sa = id.rfind("/sa/");
  if (ns == std::string_view::npos || sa == std::string_view::npos || sa < ns + 4) return {};
  return id.substr(ns + 4, sa - ns - 4);
}
inline std::string_view SpiffeServiceAccount(std::string_view id) {
  const size_t sa = id.rfind("/sa/");
  return sa == std::string_view::npos ? std::string_view() : id.substr(sa + 4);
}

}  // namespace meshplug
