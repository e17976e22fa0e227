#include "resources/egress_hosts.h"

#include <algorithm>

#include "common/strings.h"

namespace meshplug::resources {

bool IsDnsLabel1123(std::string_view s) {
  if (s.empty() || s.size() > 63 || s.front() == '-' || s.back() == '-') return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; });
}

bool IsDnsLabel(std::string_view s) { return IsDnsLabel1123(s) && s.front() >= 'a' && s.front() <= 'z'; }

absl::StatusOr<std::vector<EgressHost>> ParseEgressHosts(const std::vector<std::string>& entries) {
  if (entries.size() > kMaxEgressHosts) {
    return absl::InvalidArgumentError(Cat(entries.size(), " entries; at most ", kMaxEgressHosts));
  }
  std::vector<EgressHost> out;
  for (const std::string& entry : entries) {
    const size_t slash = entry.find('/');
    const std::string ns = entry.substr(0, slash);
    const std::string name = slash == std::string::npos ? "" : entry.substr(slash + 1);
    const bool ns_ok = ns == "." || ns == "*" || IsDnsLabel1123(ns);
    const bool name_ok = name == "*" || IsDnsLabel(name);
    if (slash == std::string::npos || !ns_ok || !name_ok) {
      return absl::InvalidArgumentError(
          Cat("\"", entry, "\" is not NAMESPACE/NAME (NAMESPACE a namespace, \".\" for the workload's own or \"*\"; "
                           "NAME a Service name or \"*\"), e.g. \"./*\" or \"auth/ext-auth\""));
    }
    out.push_back(EgressHost{ns, name});
  }
  return out;
}

std::vector<std::string> SplitEgressHosts(std::string_view annotation) {
  std::vector<std::string> out;
  if (annotation.find_first_not_of(" \t") == std::string_view::npos) return out;
  for (const std::string_view entry : Split(annotation, ',')) out.emplace_back(Trimmed(entry));
  return out;
}

bool EgressAllows(const std::vector<EgressHost>& hosts, const std::string& own, std::string_view ns,
                  std::string_view name) {
  return std::any_of(hosts.begin(), hosts.end(), [&](const EgressHost& h) {
    const bool ns_matches = h.ns == "*" || (h.ns == "." ? own == ns : h.ns == ns);
    return ns_matches && (h.name == "*" || h.name == name);
  });
}

}  // namespace meshplug::resources
