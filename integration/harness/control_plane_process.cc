#include "integration/harness/control_plane_process.h"

#include <csignal>
#include <fstream>
#include <sstream>

namespace meshplug::integration::harness {
namespace {

constexpr milliseconds kStart(20000);

// The value of `key` in a JSON log line: "key":"value".
std::string Field(const std::string& line, const std::string& key) {
  const std::string k = "\"" + key + "\":\"";
  const size_t at = line.find(k);
  if (at == std::string::npos) return "";
  const size_t from = at + k.size();
  return line.substr(from, line.find('"', from) - from);
}

}  // namespace

std::string ProxyStatusLine(const std::string& proxy_status, const std::string& agent) {
  std::istringstream lines(proxy_status);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(agent + " ", 0) == 0) return line;
  }
  return "";
}

std::vector<std::string> ProxyStatusRow(const std::string& proxy_status, const std::string& agent) {
  std::istringstream words(ProxyStatusLine(proxy_status, agent));
  std::vector<std::string> row;
  for (std::string w; words >> w;) row.push_back(w);
  return row;
}

ControlPlaneProcess::ControlPlaneProcess(std::string dir, std::vector<std::string> extra)
    : dir_(std::move(dir)), extra_(std::move(extra)) {}

std::string ControlPlaneProcess::log_path() const {
  return dir_ + "/control-plane-" + std::to_string(starts_) + ".log";
}

std::string ControlPlaneProcess::Start() {
  const std::string listen = address_.empty() ? host_ + ":0" : address_;
  std::vector<std::string> argv = wrapper_;
  const std::string http_listen = http_address_.empty() ? host_ + ":0" : http_address_;
  argv.insert(argv.end(), {"control_plane/control_plane", "--listen", listen, "--http_listen", http_listen, "--store",
                           store_.empty() ? dir_ + "/store.db" : store_, "--client_config", config_path()});
  argv.insert(argv.end(), extra_.begin(), extra_.end());
  ++starts_;
  // Its own state directory, also when the store is elsewhere.
  process_ = Process::Start(argv, log_path(), {"MESHPLUG_HOME=" + dir_});
  auto line = process_ ? process_->WaitForLog("\"msg\":\"listening\"", kStart) : std::nullopt;
  if (!line) return "the control plane did not start; see " + log_path();
  address_ = Field(*line, "address");
  line = process_->WaitForLog("\"msg\":\"http listening\"", kStart);
  if (!line) return "the control plane's HTTP pages did not start; see " + log_path();
  http_address_ = Field(*line, "address");
  return "";
}

void ControlPlaneProcess::Kill() {
  if (!process_) return;
  process_->Signal(SIGKILL);
  process_->Wait(milliseconds(10000));
  process_.reset();
}

RunResult ControlPlaneProcess::Meshctl(std::vector<std::string> args, std::string_view input) const {
  args.insert(args.begin(), {"cli/meshctl", "--config", config_path(), "--server", address_});
  args.insert(args.begin(), wrapper_.begin(), wrapper_.end());
  return Run(args, input);
}

std::string ControlPlaneProcess::JoinBootstrap(const std::string& ns, const std::string& name,
                                               const std::string& service_account, std::string* error) const {
  std::vector<std::string> args = {"workload", "token", ns + "/" + name, "--service-account", service_account,
                                   "--bootstrap"};
  if (!agent_addresses_.empty()) args.insert(args.end(), {"--xds-address", agent_addresses_});
  auto r = Meshctl(args);
  if (r.exit_code != 0) {
    *error = "meshctl workload token " + ns + "/" + name + ": " + r.err;
    return "";
  }
  const std::string path = dir_ + "/" + ns + "." + name + ".bootstrap.yaml";
  std::ofstream(path) << r.out;
  return path;
}

}  // namespace meshplug::integration::harness
