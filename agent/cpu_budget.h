// The CPUs the agent may use, which set how many workers it runs when --workers is not
// given. std::thread::hardware_concurrency() counts every CPU of the machine: a sidecar
// limited to one CPU on a 64-CPU node would run 64 workers (each with its own Lua states,
// upstream connections and buffers) taking turns on one CPU's time.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace meshplug::agent {

struct CpuBudget {
  size_t affinity = 1;          // CPUs the scheduler may run the agent on
  std::optional<double> quota;  // CPUs' worth of time its cgroups allow (none: no limit)

  // One worker per CPU it may use: the affinity's CPUs, at most the quota rounded up (a
  // second worker uses the half of 1.5 CPUs), at least one.
  size_t Workers() const;
  // "2 CPUs in the affinity mask, a cgroup quota of 1.5 CPUs".
  std::string ToString() const;
};

// The running process's budget: its affinity mask, and the tightest CPU quota of its
// cgroups and their ancestors (cgroup v2 cpu.max, v1 cpu.cfs_quota_us over
// cpu.cfs_period_us), as a container's CPU limit sets them.
CpuBudget ReadCpuBudget();

// The tightest CPU quota along this process's cgroups, from the text of
// /proc/self/mountinfo and /proc/self/cgroup, reading the quota files under the mounts
// they name. None when no level sets one.
std::optional<double> CgroupCpuQuota(std::string_view mountinfo, std::string_view proc_cgroup);

// cgroup v2's cpu.max, "150000 100000" → 1.5 CPUs; "max 100000" or malformed → none.
std::optional<double> ParseCpuMax(std::string_view cpu_max);
// cgroup v1's cpu.cfs_quota_us and cpu.cfs_period_us; a quota of -1 or malformed → none.
std::optional<double> ParseCfsQuota(std::string_view quota_us, std::string_view period_us);

}  // namespace meshplug::agent
