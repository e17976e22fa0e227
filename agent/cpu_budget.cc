#include "agent/cpu_budget.h"

#include <sched.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "common/strings.h"

namespace meshplug::agent {
namespace {

// The file's text, or "" when it cannot be read (a level without the file sets no quota).
std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// mountinfo escapes space, tab, newline and backslash in paths as \ooo.
std::string Unescaped(std::string_view path) {
  std::string out;
  for (size_t i = 0; i < path.size(); ++i) {
    if (path[i] == '\\' && i + 3 < path.size()) {
      int code = 0;
      bool octal = true;
      for (size_t j = 1; j <= 3; ++j) {
        const char c = path[i + j];
        octal = octal && c >= '0' && c <= '7';
        code = code * 8 + (c - '0');
      }
      if (octal) {
        out.push_back(static_cast<char>(code));
        i += 3;
        continue;
      }
    }
    out.push_back(path[i]);
  }
  return out;
}

bool HasItem(std::string_view list, std::string_view item) {
  const auto items = Split(list, ',');
  return std::find(items.begin(), items.end(), item) != items.end();
}

// A cgroup hierarchy this process is in: where it is mounted, and the process's cgroup
// as a folder under that mount.
struct Hierarchy {
  bool v2 = false;
  std::string folder;
  std::string mount_point;
};

// The process's path in the v2 hierarchy (`v2`) or in the v1 hierarchy with the cpu
// controller, from /proc/self/cgroup ("0::/a/b", "4:cpu,cpuacct:/a/b").
std::optional<std::string> CgroupPath(std::string_view proc_cgroup, bool v2) {
  for (std::string_view line : Split(proc_cgroup, '\n')) {
    const auto parts = Split(line, ':', 3);
    if (parts.size() != 3) continue;
    if (v2 ? parts[0] == "0" && parts[1].empty() : HasItem(parts[1], "cpu")) return std::string(parts[2]);
  }
  return std::nullopt;
}

std::vector<Hierarchy> Hierarchies(std::string_view mountinfo, std::string_view proc_cgroup) {
  std::vector<Hierarchy> out;
  for (std::string_view line : Split(mountinfo, '\n')) {
    // "36 25 0:31 <root> <mount point> <options> [optional fields] - <type> <source> <super options>"
    const size_t dash = line.find(" - ");
    if (dash == std::string_view::npos) continue;
    const auto fields = Split(line.substr(0, dash), ' ');
    const auto tail = Split(line.substr(dash + 3), ' ');
    if (fields.size() < 5 || tail.size() < 3) continue;
    const bool v2 = tail[0] == "cgroup2";
    if (!v2 && !(tail[0] == "cgroup" && HasItem(tail[2], "cpu"))) continue;
    const auto path = CgroupPath(proc_cgroup, v2);
    if (!path) continue;
    // The mount's root is a cgroup too (in a container, often the container's own): the
    // process's path is below it, or already relative to it in a cgroup namespace.
    const std::string root = Unescaped(fields[3]);
    std::string_view relative = *path;
    if (root != "/" && relative.starts_with(root) && (relative.size() == root.size() || relative[root.size()] == '/')) {
      relative.remove_prefix(root.size());
    }
    if (relative.find("/..") != std::string_view::npos) continue;  // outside the mount: not ours to read
    const std::string mount_point = Unescaped(fields[4]);
    std::string folder = mount_point;
    if (relative != "/") folder += relative;
    out.push_back(Hierarchy{v2, std::move(folder), mount_point});
  }
  return out;
}

std::optional<double> QuotaIn(const Hierarchy& h, const std::string& folder) {
  if (h.v2) return ParseCpuMax(Slurp(folder + "/cpu.max"));
  return ParseCfsQuota(Slurp(folder + "/cpu.cfs_quota_us"), Slurp(folder + "/cpu.cfs_period_us"));
}

std::optional<double> Tighter(std::optional<double> a, std::optional<double> b) {
  if (!a) return b;
  if (!b) return a;
  return std::min(*a, *b);
}

// A cgroup file's value: its first line, without surrounding spaces.
std::string_view FirstLine(std::string_view text) { return Trimmed(text.substr(0, text.find('\n'))); }

}  // namespace

std::optional<double> ParseCpuMax(std::string_view cpu_max) {
  const auto parts = Split(FirstLine(cpu_max), ' ');
  int64_t quota = 0, period = 0;
  if (parts.size() != 2 || !ParseNumber(parts[0], quota) || !ParseNumber(parts[1], period) || quota <= 0 ||
      period <= 0) {
    return std::nullopt;  // "max": no limit
  }
  return static_cast<double>(quota) / static_cast<double>(period);
}

std::optional<double> ParseCfsQuota(std::string_view quota_us, std::string_view period_us) {
  int64_t quota = 0, period = 0;
  if (!ParseNumber(FirstLine(quota_us), quota) || !ParseNumber(FirstLine(period_us), period) || quota <= 0 ||
      period <= 0) {
    return std::nullopt;  // -1: no limit
  }
  return static_cast<double>(quota) / static_cast<double>(period);
}

std::optional<double> CgroupCpuQuota(std::string_view mountinfo, std::string_view proc_cgroup) {
  std::optional<double> tightest;
  for (const Hierarchy& h : Hierarchies(mountinfo, proc_cgroup)) {
    // A parent's limit bounds its children: every level up to the mount counts.
    for (std::string folder = h.folder;;) {
      tightest = Tighter(tightest, QuotaIn(h, folder));
      const size_t slash = folder.rfind('/');
      if (folder.size() <= h.mount_point.size() || slash == std::string::npos || slash < h.mount_point.size()) break;
      folder.resize(slash);
    }
  }
  return tightest;
}

size_t CpuBudget::Workers() const {
  size_t n = std::max<size_t>(affinity, 1);
  if (quota) n = std::min(n, static_cast<size_t>(std::max(1.0, std::ceil(*quota))));
  return n;
}

std::string CpuBudget::ToString() const {
  std::string s = Cat(affinity, affinity == 1 ? " CPU" : " CPUs", " in the affinity mask");
  if (quota) s += Cat(", a cgroup quota of ", *quota, *quota == 1 ? " CPU" : " CPUs");
  return s;
}

CpuBudget ReadCpuBudget() {
  CpuBudget budget;
  // A machine of more than CPU_SETSIZE (1024) CPUs fails the call: all of them count then.
  cpu_set_t set;
  CPU_ZERO(&set);
  budget.affinity = sched_getaffinity(0, sizeof set, &set) == 0 ? static_cast<size_t>(CPU_COUNT(&set))
                                                                 : std::max(1u, std::thread::hardware_concurrency());
  budget.quota = CgroupCpuQuota(Slurp("/proc/self/mountinfo"), Slurp("/proc/self/cgroup"));
  return budget;
}

}  // namespace meshplug::agent
