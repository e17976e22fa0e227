// Real processes for integration tests: start, wait on log lines and exits with
// deadlines, and always stop what was started.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/eventually.h"

namespace meshplug::integration::harness {

using std::chrono::milliseconds;

// A background process whose stdout and stderr go to a log file.
class Process {
 public:
  // `env` entries ("K=V") are added to this process's environment.
  static std::unique_ptr<Process> Start(const std::vector<std::string>& argv,
                                        const std::string& log_path,
                                        const std::vector<std::string>& env = {});
  // SIGTERM, then SIGKILL if it has not exited within 5 s.
  ~Process();

  pid_t pid() const { return pid_; }
  void Signal(int sig);
  // The exit status (or 128 + signal) once it exits within `timeout`, else nullopt.
  std::optional<int> Wait(milliseconds timeout);
  // The first log line containing `needle`, once it appears within `timeout`.
  std::optional<std::string> WaitForLog(std::string_view needle, milliseconds timeout) const;
  std::string Log() const;

 private:
  Process(pid_t pid, std::string log_path) : pid_(pid), log_path_(std::move(log_path)) {}
  pid_t pid_;
  std::string log_path_;
  std::optional<int> status_;
};

struct RunResult {
  int exit_code = -1;  // -1: timed out (and killed)
  std::string out;
  std::string err;
};

// Runs a command to completion, feeding `input` on stdin, killing it after `timeout`.
RunResult Run(const std::vector<std::string>& argv, std::string_view input = "",
              milliseconds timeout = milliseconds(30000), const std::vector<std::string>& env = {});

// The port in a log line such as `Listening at: http://127.0.0.1:PORT` (after `marker`);
// 0 when the marker is not there.
int PortAfter(const std::string& line, const std::string& marker);

// `n` distinct free loopback ports: each bound (port 0) until all are chosen, then
// released for a server that cannot bind port 0 itself (etcd, Prometheus) to take; such a
// start is retried on new ports when one was taken meanwhile.
std::vector<int> FreeLoopbackPorts(int n);

// A directory for this test's files (under $TEST_TMPDIR), created empty.
std::string TempDir(const std::string& name);

using meshplug::Eventually;

}  // namespace meshplug::integration::harness
