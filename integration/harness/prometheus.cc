#include "integration/harness/prometheus.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "net/http_client.h"
#include "net/prometheus_query.h"
#include "common/strings.h"

namespace meshplug::integration::harness {
namespace {

constexpr const char* kPrometheus = "/usr/bin/prometheus";

}  // namespace

std::string PrometheusProcess::Unavailable() {
  return ::access(kPrometheus, X_OK) == 0 ? "" : "needs Debian's prometheus (tools/install-deps.sh installs it)";
}

PrometheusProcess::PrometheusProcess(const std::string& dir, const std::string& control_plane_http,
                                     const std::string& token) {
  error_ = Unavailable();
  if (!error_.empty()) return;
  std::filesystem::create_directories(dir);
  const std::string config = dir + "/prometheus.yml";
  // `type: Bearer` spelled out: Debian's Prometheus 2.42 sends the bare token in http_sd's
  // Authorization header without it.
  std::ofstream(config) << "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                           "scrape_configs:\n"
                           "  - job_name: meshplug\n"
                           "    http_sd_configs:\n"
                           "      - url: http://" << control_plane_http << "/http_sd\n"
                           "        refresh_interval: 1s\n"
                           "        authorization: {type: Bearer, credentials: " << token << "}\n";
  // A port taken between choosing and binding it: start again on another (a few times).
  for (int attempt = 1; attempt <= 3; ++attempt) {
    port_ = FreeLoopbackPorts(1)[0];
    std::filesystem::remove_all(dir + "/data");
    process_ = Process::Start({kPrometheus, "--config.file=" + config, "--storage.tsdb.path=" + dir + "/data",
                               Cat("--web.listen-address=127.0.0.1:", port_), "--log.level=warn"},
                              dir + "/prometheus.log");
    const bool ready = process_ && Eventually(
                                       [&] {
                                         return net::HttpGet(Cat("127.0.0.1:", port_), "/-/ready",
                                                             milliseconds(1000)).ok() ||
                                                process_->Wait(milliseconds(0)).has_value();
                                       },
                                       milliseconds(30000), milliseconds(100)) &&
                       !process_->Wait(milliseconds(0)).has_value();
    if (ready) {
      error_.clear();
      return;
    }
    error_ = Cat("Prometheus did not become ready:\n", process_ ? process_->Log() : "not started");
    if (error_.find("address already in use") == std::string::npos) return;
  }
}

std::string PrometheusProcess::url() const { return Cat("http://127.0.0.1:", port_); }

absl::StatusOr<std::vector<traffic::Sample>> PrometheusProcess::Query(const std::string& promql) const {
  return net::QueryPrometheus(url(), promql);
}

absl::StatusOr<double> PrometheusProcess::Scalar(const std::string& promql) const {
  absl::StatusOr<std::vector<traffic::Sample>> samples = Query(promql);
  if (!samples.ok()) return samples.status();
  if (samples->size() != 1) return absl::NotFoundError(Cat(promql, ": ", samples->size(), " samples, not 1"));
  return samples->front().value;
}

}  // namespace meshplug::integration::harness
