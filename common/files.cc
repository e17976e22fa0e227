#include "common/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/strings.h"

namespace meshplug {

namespace {

absl::Status Errno(const std::string& what, const std::string& path) {
  return absl::UnavailableError(Cat(what, " ", path, ": ", std::strerror(errno)));
}

}  // namespace

absl::Status WritePrivateFile(const std::string& path, std::string_view text) {
  const std::filesystem::path target(path);
  std::filesystem::path dir = target.parent_path();
  if (dir.empty()) dir = ".";
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) {
    std::filesystem::create_directories(dir, ec);
    if (ec) return absl::UnavailableError(Cat("cannot create ", dir.string(), ": ", ec.message()));
    std::filesystem::permissions(dir, std::filesystem::perms::owner_all, ec);
  }
  // A new file of our own (O_EXCL, mode 0600, an unpredictable name): nothing planted at
  // the temporary name can receive the secret.
  std::string tmp = Cat(path, ".tmp.XXXXXX");
  const int fd = ::mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) return Errno("cannot create", tmp);
  auto fail = [&](const char* what) {
    absl::Status st = Errno(what, tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return st;
  };
  size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail("cannot write");
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) return fail("cannot fsync");
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    absl::Status st = Errno("cannot rename to", path);
    ::unlink(tmp.c_str());
    return st;
  }
  // The rename is durable once the directory entry is.
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return absl::OkStatus();
}

std::string DefaultStatePath(std::string_view relative) {
  if (const char* home = std::getenv("MESHPLUG_HOME")) return Cat(home, "/", relative);
  const char* home = std::getenv("HOME");
  return Cat(home ? home : ".", "/.local/share/meshplug/", relative);
}

absl::StatusOr<std::string> ReadFileText(const std::string& path, std::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(Cat("cannot read ", what, " ", path, ": ", std::strerror(errno)));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace meshplug
