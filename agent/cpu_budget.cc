#include "agent/cpu_budget.h"

#include <errno.h>
#include <sched.h>

#include <algorithm>
#include <cmath>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "common/files.h"
#include "common/strings.h"

namespace meshplug::agent {
namespace {

// The file's text, or "" when it cannot be read (a level without the file sets no quota).
std::string TextOf(const std::string& path) { return ReadFileText(path, "cgroup file").value_or(""); }

// mountinfo writes space, tab, newline and backslash in paths as \ooo (C's octal escapes).
std::string Unescaped(std::string_view path) {
  std::string out;
  return absl::CUnescape(absl::string_view(path.data(), path.size()), &out) ? out : std::string(path);
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

// The process's paths from /proc/self/cgroup: in the v2 hierarchy ("0::/a/b") and in the
// v1 hierarchy with the cpu controller ("4:cpu,cpuacct:/a/b").
struct CgroupPaths {
  std::optional<std::string> v1_cpu, v2;
};
CgroupPaths PathsOf(std::string_view proc_cgroup) {
  CgroupPaths paths;
  for (std::string_view line : Split(proc_cgroup, '\n')) {
    const auto parts = Split(line, ':', 3);
    if (parts.size() != 3) continue;
    if (parts[0] == "0" && parts[1].empty()) paths.v2 = std::string(parts[2]);
    if (HasItem(parts[1], "cpu")) paths.v1_cpu = std::string(parts[2]);
  }
  return paths;
}

bool HasDotDot(std::string_view path) {
  const auto parts = Split(path, '/');
  return std::find(parts.begin(), parts.end(), "..") != parts.end();
}

std::vector<Hierarchy> Hierarchies(std::string_view mountinfo, std::string_view proc_cgroup) {
  const CgroupPaths paths = PathsOf(proc_cgroup);
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
    const std::optional<std::string>& path = v2 ? paths.v2 : paths.v1_cpu;
    if (!path || HasDotDot(*path)) continue;  // outside this mount namespace's view: not ours to read
    // The mount shows the hierarchy from its root (in a container, often the container's
    // own cgroup); the kernel gives both paths from the same namespace root, so ours is
    // below it or the mount does not hold our cgroup.
    const std::string root = Unescaped(fields[3]);
    std::string_view relative = *path;
    if (root != "/") {
      if (!relative.starts_with(root) || (relative.size() != root.size() && relative[root.size()] != '/')) continue;
      relative.remove_prefix(root.size());
    }
    const std::string mount_point = Unescaped(fields[4]);
    std::string folder = mount_point;
    if (relative != "/") folder += relative;
    out.push_back(Hierarchy{v2, std::move(folder), mount_point});
  }
  return out;
}

std::optional<double> QuotaIn(const Hierarchy& h, const std::string& folder) {
  if (h.v2) return ParseCpuMax(TextOf(folder + "/cpu.max"));
  return ParseCfsQuota(TextOf(folder + "/cpu.cfs_quota_us"), TextOf(folder + "/cpu.cfs_period_us"));
}

std::optional<double> Tighter(std::optional<double> a, std::optional<double> b) {
  if (!a) return b;
  if (!b) return a;
  return std::min(*a, *b);
}

// A cgroup file's value: its first line, without surrounding spaces.
std::string_view FirstLine(std::string_view text) { return Trimmed(text.substr(0, text.find('\n'))); }

// CPUs' worth of time: a quota over its period, both positive whole numbers; else no limit.
std::optional<double> Ratio(std::string_view quota, std::string_view period) {
  int64_t q = 0, p = 0;
  if (!ParseNumber(quota, q) || !ParseNumber(period, p) || q <= 0 || p <= 0) return std::nullopt;
  return static_cast<double>(q) / static_cast<double>(p);
}

}  // namespace

std::optional<double> ParseCpuMax(std::string_view cpu_max) {
  const auto parts = Split(FirstLine(cpu_max), ' ');
  if (parts.size() != 2) return std::nullopt;
  return Ratio(parts[0], parts[1]);  // "max": no limit
}

std::optional<double> ParseCfsQuota(std::string_view quota_us, std::string_view period_us) {
  return Ratio(FirstLine(quota_us), FirstLine(period_us));  // -1: no limit
}

std::optional<double> CgroupCpuQuota(std::string_view mountinfo, std::string_view proc_cgroup) {
  std::optional<double> tightest;
  for (const Hierarchy& h : Hierarchies(mountinfo, proc_cgroup)) {
    // A parent's limit bounds its children: every level up to the mount counts.
    for (std::string folder = h.folder;; folder.resize(folder.rfind('/'))) {
      tightest = Tighter(tightest, QuotaIn(h, folder));
      if (folder.size() <= h.mount_point.size()) break;  // the folder is below the mount: it has a '/'
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
  budget.affinity = std::max(1u, std::thread::hardware_concurrency());
  // A set too small for the machine's possible CPUs fails with EINVAL: a larger one then.
  for (int cpus = CPU_SETSIZE; cpus <= (1 << 20); cpus *= 2) {
    cpu_set_t* set = CPU_ALLOC(cpus);
    const size_t size = CPU_ALLOC_SIZE(cpus);
    CPU_ZERO_S(size, set);
    const int rc = sched_getaffinity(0, size, set);
    const int error = errno;
    if (rc == 0) budget.affinity = static_cast<size_t>(CPU_COUNT_S(size, set));
    CPU_FREE(set);
    if (rc == 0 || error != EINVAL) break;
  }
  budget.quota = CgroupCpuQuota(TextOf("/proc/self/mountinfo"), TextOf("/proc/self/cgroup"));
  return budget;
}

}  // namespace meshplug::agent
