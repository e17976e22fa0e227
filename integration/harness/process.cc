#include "integration/harness/process.h"

#include <sys/socket.h>

#include <netinet/in.h>

#include <cctype>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace meshplug::integration::harness {
namespace {

std::vector<char*> CArgs(const std::vector<std::string>& v) {
  std::vector<char*> out;
  for (const auto& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

// In the child: apply env, exec, and report failure on stderr.
[[noreturn]] void Exec(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  // A parent that waits for signals (the demo) blocks them; the child must not inherit that.
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  for (const auto& kv : env) putenv(const_cast<char*>(kv.c_str()));
  auto args = CArgs(argv);
  execvp(args[0], args.data());
  std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
  _exit(127);
}

int DecodeStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

std::unique_ptr<Process> Process::Start(const std::vector<std::string>& argv,
                                        const std::string& log_path,
                                        const std::vector<std::string>& env) {
  const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return nullptr;
  const pid_t pid = fork();
  if (pid < 0) {
    ::close(fd);
    return nullptr;
  }
  if (pid == 0) {
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    const int devnull = ::open("/dev/null", O_RDONLY);
    dup2(devnull, STDIN_FILENO);
    Exec(argv, env);
  }
  ::close(fd);
  return std::unique_ptr<Process>(new Process(pid, log_path));
}

Process::~Process() {
  if (status_) return;
  Signal(SIGTERM);
  if (!Wait(milliseconds(5000))) {
    Signal(SIGKILL);
    Wait(milliseconds(5000));
  }
}

void Process::Signal(int sig) {
  if (!status_) ::kill(pid_, sig);
}

std::optional<int> Process::Wait(milliseconds timeout) {
  if (status_) return status_;
  Eventually(
      [&] {
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_) status_ = DecodeStatus(status);
        return status_.has_value();
      },
      timeout);
  return status_;
}

std::string Process::Log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::optional<std::string> Process::WaitForLog(std::string_view needle, milliseconds timeout) const {
  std::optional<std::string> found;
  Eventually(
      [&] {
        std::istringstream lines(Log());
        for (std::string line; std::getline(lines, line);) {
          if (line.find(needle) != std::string::npos) {
            found = line;
            return true;
          }
        }
        return false;
      },
      timeout);
  return found;
}

RunResult Run(const std::vector<std::string>& argv, std::string_view input, milliseconds timeout,
              const std::vector<std::string>& env) {
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) return {};
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], STDIN_FILENO);
    dup2(out[1], STDOUT_FILENO);
    dup2(err[1], STDERR_FILENO);
    Exec(argv, env);
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  RunResult r;
  size_t written = 0;
  if (input.empty()) ::close(in[1]);
  int open_fds = 2;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool timed_out = false;
  while (open_fds > 0) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd fds[3] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}, {written < input.size() ? in[1] : -1, POLLOUT, 0}};
    if (poll(fds, 3, static_cast<int>(left.count())) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      char buf[65536];
      const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        (i == 0 ? r.out : r.err).append(buf, n);
      } else {
        ::close(fds[i].fd);
        (i == 0 ? out[0] : err[0]) = -1;
        --open_fds;
      }
    }
    if (fds[2].fd >= 0 && (fds[2].revents & (POLLOUT | POLLERR))) {
      const ssize_t n = ::write(in[1], input.data() + written, input.size() - written);
      written = n > 0 ? written + n : input.size();
      if (written >= input.size()) ::close(in[1]);
    }
  }
  for (int fd : {out[0], err[0]}) {
    if (fd >= 0) ::close(fd);
  }
  if (written < input.size()) ::close(in[1]);
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  r.exit_code = timed_out ? -1 : DecodeStatus(status);
  return r;
}

std::string TempDir(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  const std::filesystem::path dir = std::filesystem::path(base ? base : "/tmp") / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

int PortAfter(const std::string& line, const std::string& marker) {
  const size_t at = line.find(marker);
  if (at == std::string::npos) return 0;
  size_t i = at + marker.size();
  int port = 0;
  while (i < line.size() && std::isdigit(static_cast<unsigned char>(line[i]))) port = port * 10 + (line[i++] - '0');
  return port;
}

std::vector<int> FreeLoopbackPorts(int n) {
  std::vector<int> fds, ports;
  for (int i = 0; i < n; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    int port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port = ntohs(addr.sin_port);
    }
    fds.push_back(fd);
    ports.push_back(port);
  }
  for (int fd : fds) ::close(fd);
  return ports;
}

}  // namespace meshplug::integration::harness
