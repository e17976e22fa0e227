// The agent binary runs one worker per CPU it may use when --workers is not given: the
// CPUs of its affinity mask (taskset, a container's cpuset), capped by its cgroup's CPU
// quota (a container's CPU limit), not every CPU of the machine.
#include <gtest/gtest.h>

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "agent/cpu_budget.h"
#include "integration/harness/process.h"

namespace meshplug::integration {

using namespace harness;  // the process harness is this package's vocabulary
namespace {

namespace fs = std::filesystem;

// The agent's start line, once it listens; it has no routes (none are needed to count workers).
std::optional<std::string> StartLine(const std::string& name, const std::vector<std::string>& prefix,
                                     std::unique_ptr<Process>& agent) {
  const std::string dir = TempDir(name);
  std::ofstream(dir + "/snapshot.json") << R"({"version": "workers-test", "chains": {"name": "chains"}})";
  std::vector<std::string> argv = prefix;
  for (const char* arg : {"agent/agent", "--bind_address", "127.0.0.1", "--outbound_port", "0", "--inbound_port", "0",
                          "--admin_port", "0"}) {
    argv.push_back(arg);
  }
  argv.push_back("--snapshot_file");
  argv.push_back(dir + "/snapshot.json");
  agent = Process::Start(argv, dir + "/agent.log");
  return agent->WaitForLog("agent: listening", milliseconds(20000));
}

int WorkersIn(const std::string& line) { return PortAfter(line, "workers="); }

size_t MyAffinity() { return agent::ReadCpuBudget().affinity; }

// A CPU this process may run on.
int FirstAllowedCpu() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (CPU_ISSET(cpu, &set)) return cpu;
    }
  }
  return 0;
}

TEST(AgentWorkers, OnePerCpuOfItsAffinityMask) {
  const agent::CpuBudget mine = agent::ReadCpuBudget();
  std::unique_ptr<Process> agent;
  auto line = StartLine("all", {}, agent);
  ASSERT_TRUE(line) << agent->Log();
  if (!mine.quota) {
    EXPECT_EQ(WorkersIn(*line), static_cast<int>(mine.affinity)) << *line;
  } else {  // this test itself runs under a CPU limit
    EXPECT_LE(WorkersIn(*line), static_cast<int>(mine.affinity)) << *line << " (" << mine.ToString() << ")";
  }

  std::unique_ptr<Process> pinned;
  line = StartLine("pinned", {"/usr/bin/taskset", "-c", std::to_string(FirstAllowedCpu())}, pinned);
  ASSERT_TRUE(line) << pinned->Log();
  EXPECT_EQ(WorkersIn(*line), 1) << *line;
}

// A cpu cgroup of this test's own, removed (with anything left in it) on the way out and
// before it is made, in case an earlier run was killed.
class QuotaCgroup {
 public:
  static constexpr const char* kPrefix = "meshplug-cpu-test-";

  // Where cpu cgroups are made here, or "" with the reason in `why`.
  static std::string Root(std::string& why) {
    if (geteuid() != 0) {
      why = "needs root to make a cgroup with a CPU quota";
      return "";
    }
    for (const char* v1 : {"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"}) {
      if (fs::exists(fs::path(v1) / "cpu.cfs_quota_us")) return v1;
    }
    std::ifstream controllers("/sys/fs/cgroup/cgroup.subtree_control");
    std::string word;
    while (controllers >> word) {
      if (word == "cpu") return "/sys/fs/cgroup";
    }
    why = "no cgroup hierarchy with the cpu controller enabled (neither a v1 cpu mount nor cpu in cgroup v2's "
          "root subtree_control)";
    return "";
  }

  explicit QuotaCgroup(const std::string& root) : v2_(root == "/sys/fs/cgroup") {
    // Those of earlier runs that were killed; another run going on keeps its own.
    for (const auto& entry : fs::directory_iterator(root)) {
      const std::string name = entry.path().filename().string();
      if (!name.starts_with(kPrefix)) continue;
      const pid_t owner = static_cast<pid_t>(std::atoll(name.c_str() + std::strlen(kPrefix)));
      if (owner <= 0 || (::kill(owner, 0) != 0 && errno == ESRCH)) Remove(entry.path());
    }
    path_ = fs::path(root) / (kPrefix + std::to_string(getpid()));
    fs::create_directory(path_);
  }
  ~QuotaCgroup() { Remove(path_); }

  const fs::path& path() const { return path_; }
  // One CPU's worth of time per period; false when the kernel refused it.
  bool LimitToOneCpu() const {
    if (v2_) return Write("cpu.max", "100000 100000\n");
    return Write("cpu.cfs_period_us", "100000\n") && Write("cpu.cfs_quota_us", "100000\n");
  }

 private:
  bool Write(const std::string& file, const std::string& value) const {
    std::ofstream out(path_ / file);
    out << value;
    out.close();
    return !out.fail();
  }
  static void Remove(const fs::path& path) {
    if (!fs::exists(path)) return;
    std::ifstream procs(path / "cgroup.procs");
    for (pid_t pid; procs >> pid;) ::kill(pid, SIGKILL);
    // rmdir fails while a killed process is still in it.
    EXPECT_TRUE(Eventually([&] { return ::rmdir(path.c_str()) == 0 || errno == ENOENT; }, milliseconds(5000)))
        << "cannot remove " << path;
  }

  bool v2_;
  fs::path path_;
};

TEST(AgentWorkers, NoMoreThanItsCgroupsCpuQuotaAllows) {
  if (MyAffinity() < 2) GTEST_SKIP() << "one CPU here: a quota of one CPU would change nothing";
  std::string why;
  const std::string root = QuotaCgroup::Root(why);
  if (root.empty()) GTEST_SKIP() << why;
  QuotaCgroup cgroup(root);
  ASSERT_TRUE(cgroup.LimitToOneCpu()) << "cannot set a CPU quota in " << cgroup.path();

  std::unique_ptr<Process> agent;
  // The shell joins the cgroup, then becomes the agent.
  auto line = StartLine("quota", {"/bin/sh", "-c", R"(echo $$ > "$0/cgroup.procs" && exec "$@")", cgroup.path().string()},
                        agent);
  ASSERT_TRUE(line) << agent->Log();
  std::ifstream in("/proc/" + std::to_string(agent->pid()) + "/cgroup");
  std::stringstream cgroups;
  cgroups << in.rdbuf();
  EXPECT_NE(cgroups.str().find(cgroup.path().filename().string()), std::string::npos) << cgroups.str();
  EXPECT_EQ(WorkersIn(*line), 1) << *line << "\n" << agent->Log();
  EXPECT_NE(agent->Log().find("a cgroup quota of 1 CPU"), std::string::npos) << agent->Log();
  agent->Signal(SIGTERM);
  EXPECT_EQ(agent->Wait(milliseconds(10000)), 0) << agent->Log();
}

}  // namespace
}  // namespace meshplug::integration
