// meshplug-intercept: installs (or removes) the iptables rules that redirect a workload's
// TCP traffic to its agent, in the network namespace it runs in — run it in the workload's
// namespace before the app starts, as root (like an init container):
//
//   ip netns exec NS meshplug-intercept install --proxy_uid 1337
//       --exclude_outbound_cidrs 10.0.0.1/32      (the control plane)
//   ip netns exec NS meshplug-intercept remove
//
// Installing again replaces the rules; --ipv6 redirects IPv6 too. The agent must run as
// --proxy_uid: its own connections are told apart by their user.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "agent/intercept/rules.h"
#include "common/strings.h"

ABSL_FLAG(uint32_t, outbound_port, 15001, "the agent's outbound listener");
ABSL_FLAG(uint32_t, inbound_port, 15003, "the agent's inbound listener");
ABSL_FLAG(uint32_t, proxy_uid, 1337, "the user the agent runs as: its own connections are not redirected");
ABSL_FLAG(std::vector<std::string>, include_inbound_ports, {"*"},
          "the app's ports whose incoming connections go to the agent (\"*\": all)");
ABSL_FLAG(std::vector<std::string>, exclude_inbound_ports, {}, "incoming ports left alone");
ABSL_FLAG(std::vector<std::string>, exclude_outbound_cidrs, {},
          "destinations left alone, e.g. the control plane's address (IPv4 or IPv6 CIDRs)");
ABSL_FLAG(std::vector<std::string>, exclude_outbound_ports, {}, "destination ports left alone");
ABSL_FLAG(bool, ipv6, false,
          "also redirect IPv6 with ip6tables (the agent must then listen on IPv6 too: --bind_address ::)");
ABSL_FLAG(uint32_t, dns_port, 0,
          "send the workload's DNS queries to the agent's DNS server on this port (agent --dns_port); 0: leave DNS "
          "alone");

namespace {

namespace intercept = meshplug::agent::intercept;
using meshplug::Cat;

// Runs `argv` with `input` on its stdin; its exit code (-1 if it could not run).
int Run(const std::vector<std::string>& argv, const std::string& input, bool quiet) {
  // Built before fork: the child makes only async-signal-safe calls (no allocation).
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int pipefd[2];
  if (pipe(pipefd) != 0) return -1;
  const pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    dup2(pipefd[0], STDIN_FILENO);
    if (pipefd[0] != STDIN_FILENO) close(pipefd[0]);  // started with no stdin: the pipe is it
    close(pipefd[1]);
    if (quiet) {
      const int null = open("/dev/null", O_WRONLY);
      if (null >= 0) {
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        if (null > STDERR_FILENO) close(null);
      }
    }
    execvp(args[0], args.data());
    _exit(127);
  }
  close(pipefd[0]);
  for (size_t done = 0; done < input.size();) {
    const ssize_t n = write(pipefd[1], input.data() + done, input.size() - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  close(pipefd[1]);
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool Have(const std::string& tool) { return Run({"sh", "-c", "command -v " + tool}, "", true) == 0; }

// Removes what an earlier install left; a command fails only when that part is absent.
void Remove(const std::string& iptables) {
  for (auto args : intercept::RemoveCommands()) {
    args.insert(args.begin(), iptables);
    Run(args, "", true);
  }
}

absl::StatusOr<std::vector<uint16_t>> Ports(const std::vector<std::string>& list, const char* flag) {
  std::vector<uint16_t> out;
  for (const auto& p : list) {
    const std::optional<uint16_t> port = meshplug::ParsePort(p);
    if (!port) return absl::InvalidArgumentError(Cat("--", flag, ": \"", p, "\" is not a port (1-65535)"));
    out.push_back(*port);
  }
  return out;
}

int Fail(const std::string& why) {
  std::fprintf(stderr, "meshplug-intercept: %s\n", why.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("meshplug-intercept install|remove [flags]: redirect this network namespace's TCP to its agent");
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (rest.size() != 2 || (std::string(rest[1]) != "install" && std::string(rest[1]) != "remove")) {
    return Fail("usage: meshplug-intercept install|remove [flags] (see --help)");
  }
  const bool install = std::string(rest[1]) == "install";
  intercept::Options options;
  const uint32_t outbound = absl::GetFlag(FLAGS_outbound_port), inbound = absl::GetFlag(FLAGS_inbound_port);
  if (outbound > 65535 || inbound > 65535) return Fail("--outbound_port and --inbound_port are ports (1-65535)");
  options.outbound_port = static_cast<uint16_t>(outbound);
  options.inbound_port = static_cast<uint16_t>(inbound);
  options.proxy_uid = absl::GetFlag(FLAGS_proxy_uid);
  if (absl::GetFlag(FLAGS_dns_port) > 65535) return Fail("--dns_port is a port (1-65535, or 0 for none)");
  options.dns_port = static_cast<uint16_t>(absl::GetFlag(FLAGS_dns_port));
  options.include_inbound_ports = absl::GetFlag(FLAGS_include_inbound_ports);
  options.exclude_outbound_cidrs = absl::GetFlag(FLAGS_exclude_outbound_cidrs);
  auto in_ports = Ports(absl::GetFlag(FLAGS_exclude_inbound_ports), "exclude_inbound_ports");
  if (!in_ports.ok()) return Fail(std::string(in_ports.status().message()));
  auto out_ports = Ports(absl::GetFlag(FLAGS_exclude_outbound_ports), "exclude_outbound_ports");
  if (!out_ports.ok()) return Fail(std::string(out_ports.status().message()));
  options.exclude_inbound_ports = *in_ports;
  options.exclude_outbound_ports = *out_ports;
  if (auto st = intercept::Validate(options); !st.ok()) return Fail(std::string(st.message()));
  if (geteuid() != 0) return Fail("changing iptables needs root (run it as an init step of the workload)");
  // A rules tool that exits before reading its input makes our write fail (and its exit
  // code says why) instead of killing us.
  std::signal(SIGPIPE, SIG_IGN);
  if (!Have("iptables-restore")) return Fail("iptables-restore is not installed (apt-get install iptables)");

  std::vector<std::pair<std::string, bool>> families = {{"iptables", false}};
  if (absl::GetFlag(FLAGS_ipv6)) {
    if (!Have("ip6tables-restore")) return Fail("--ipv6: ip6tables-restore is not installed (apt-get install iptables)");
    families.push_back({"ip6tables", true});
  }
  for (const auto& [tool, v6] : families) {
    Remove(tool);
    if (!install) continue;
    if (Run({tool + "-restore", "--noflush"}, intercept::InstallScript(options, v6), false) != 0) {
      Remove(tool);
      return Fail(Cat(tool, "-restore refused the rules (see above); nothing was left installed"));
    }
  }
  std::printf("meshplug-intercept: %s (%s)\n", install ? "installed" : "removed",
              families.size() == 2 ? "IPv4 and IPv6" : "IPv4");
  return 0;
}
