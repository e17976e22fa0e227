#include "agent/cpu_budget.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace meshplug::agent {
namespace {

namespace fs = std::filesystem;

// A cgroup tree of files under a temporary folder, mounted (in the mountinfo text the test
// writes) where the real ones would be.
class FakeCgroups : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) / ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  std::string Mount(const std::string& name) const { return (root_ / name).string(); }
  void Write(const std::string& path, const std::string& text) const {
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream(path) << text;
  }
  // A v1 level: the quota and period files of `folder`.
  void V1(const std::string& folder, const std::string& quota, const std::string& period = "100000\n") const {
    Write(folder + "/cpu.cfs_quota_us", quota);
    Write(folder + "/cpu.cfs_period_us", period);
  }
  fs::path root_;
};

TEST(CpuBudget, WorkersAreTheAffinitysCpusCappedByTheQuotaRoundedUp) {
  EXPECT_EQ((CpuBudget{8, std::nullopt}.Workers()), 8u);
  EXPECT_EQ((CpuBudget{8, 1.0}.Workers()), 1u);
  EXPECT_EQ((CpuBudget{8, 1.5}.Workers()), 2u);
  EXPECT_EQ((CpuBudget{2, 4.0}.Workers()), 2u);  // a quota above the CPUs it may run on
  EXPECT_EQ((CpuBudget{8, 0.25}.Workers()), 1u);
  EXPECT_EQ((CpuBudget{0, std::nullopt}.Workers()), 1u);
  EXPECT_EQ((CpuBudget{2, 1.5}.ToString()), "2 CPUs in the affinity mask, a cgroup quota of 1.5 CPUs");
  EXPECT_EQ((CpuBudget{1, std::nullopt}.ToString()), "1 CPU in the affinity mask");
}

TEST(CpuBudget, ParsesCgroupFilesAndTreatsNoLimitAndJunkAsNone) {
  EXPECT_EQ(ParseCpuMax("150000 100000\n"), 1.5);
  EXPECT_EQ(ParseCpuMax("max 100000\n"), std::nullopt);
  for (const char* junk : {"", "\n", "100000", "x 100000", "100000 0", "-5 100000", "1 2 3"}) {
    EXPECT_EQ(ParseCpuMax(junk), std::nullopt) << junk;
  }
  EXPECT_EQ(ParseCfsQuota("50000\n", "100000\n"), 0.5);
  EXPECT_EQ(ParseCfsQuota("-1\n", "100000\n"), std::nullopt);
  EXPECT_EQ(ParseCfsQuota("", "100000\n"), std::nullopt);
  EXPECT_EQ(ParseCfsQuota("50000\n", "0\n"), std::nullopt);
}

TEST_F(FakeCgroups, V1TakesTheTightestQuotaOfTheCgroupAndItsAncestors) {
  const std::string cpu = Mount("cpu,cpuacct");
  V1(cpu, "-1\n");                              // the root: no limit
  V1(cpu + "/kubepods", "400000\n");            // 4 CPUs for the node's pods
  V1(cpu + "/kubepods/pod1", "150000\n");       // the pod's limit, 1.5
  V1(cpu + "/kubepods/pod1/sidecar", "-1\n");   // the container itself sets none
  const std::string mountinfo = "31 30 0:28 / " + cpu + " rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct\n" +
                                "33 30 0:30 / " + Mount("cpuset") + " rw - cgroup cgroup rw,cpuset\n";
  const std::string proc = "3:cpuset:/other\n2:cpu,cpuacct:/kubepods/pod1/sidecar\n1:name=systemd:/\n0::/\n";
  EXPECT_EQ(CgroupCpuQuota(mountinfo, proc), 1.5);
  // Only the cpu controller's hierarchy counts: cpuset's and cpuacct's alone are not it.
  EXPECT_EQ(CgroupCpuQuota(mountinfo, "3:cpuset:/kubepods/pod1/sidecar\n2:cpuacct:/kubepods/pod1/sidecar\n"),
            std::nullopt);
}

TEST_F(FakeCgroups, V2ReadsCpuMaxAlongThePathAndAContainersOwnRoot) {
  const std::string unified = Mount("unified dir");  // a space, which mountinfo escapes
  Write(unified + "/system.slice/cpu.max", "max 100000\n");
  Write(unified + "/system.slice/mesh.service/cpu.max", "50000 100000\n");
  std::string escaped = unified;
  escaped.replace(escaped.find(' '), 1, "\\040");
  const std::string mountinfo = "40 30 0:37 / " + escaped + " rw,relatime - cgroup2 cgroup2 rw\n";
  EXPECT_EQ(CgroupCpuQuota(mountinfo, "0::/system.slice/mesh.service\n"), 0.5);
  EXPECT_EQ(CgroupCpuQuota(mountinfo, "0::/system.slice\n"), std::nullopt);
  // A container's view: the mount's root is its own cgroup, below which /proc/self/cgroup
  // names ours; a mount of some other part of the hierarchy does not hold it.
  const std::string container = "50 40 0:37 /system.slice/mesh.service " + escaped + " rw - cgroup2 cgroup2 rw\n";
  Write(unified + "/cpu.max", "200000 100000\n");
  Write(unified + "/sidecar/cpu.max", "300000 100000\n");
  EXPECT_EQ(CgroupCpuQuota(container, "0::/system.slice/mesh.service\n"), 2.0);
  EXPECT_EQ(CgroupCpuQuota(container, "0::/system.slice/mesh.service/sidecar\n"), 2.0);
  EXPECT_EQ(CgroupCpuQuota(container, "0::/other.slice\n"), std::nullopt);
  EXPECT_EQ(CgroupCpuQuota(container, "0::/system.slice/mesh.service2\n"), std::nullopt);
  // No cgroup mounts, or a path that leaves the mount: nothing to read.
  EXPECT_EQ(CgroupCpuQuota("", "0::/system.slice/mesh.service\n"), std::nullopt);
  EXPECT_EQ(CgroupCpuQuota(mountinfo, "0::/../etc\n"), std::nullopt);
  Write(unified + "/..cache/cpu.max", "25000 100000\n");  // a name that starts with dots is a name
  EXPECT_EQ(CgroupCpuQuota(mountinfo, "0::/..cache\n"), 0.25);
  EXPECT_EQ(CgroupCpuQuota(mountinfo, "garbage"), std::nullopt);
}

TEST(CpuBudget, TheRunningProcessHasAtLeastOneCpu) {
  const CpuBudget budget = ReadCpuBudget();
  EXPECT_GE(budget.affinity, 1u);
  EXPECT_GE(budget.Workers(), 1u);
}

}  // namespace
}  // namespace meshplug::agent
