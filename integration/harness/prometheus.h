// Debian's Prometheus as a real process for tests and the demo: it discovers every agent
// through the control plane's /http_sd (the five-line configuration docs/observability.md
// shows), scrapes each second, and answers PromQL.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/traffic_stats.h"
#include "integration/harness/process.h"

namespace meshplug::integration::harness {

class PrometheusProcess {
 public:
  // Why Prometheus cannot run here ("" when it can): the binary is missing.
  static std::string Unavailable();

  // Starts it in `dir` on a free loopback port, scraping what `control_plane_http`
  // ("host:port") lists, with `token` (read-only or admin); error() says why not.
  PrometheusProcess(const std::string& dir, const std::string& control_plane_http, const std::string& token);

  const std::string& error() const { return error_; }
  // "http://127.0.0.1:PORT", for --prometheus and a browser.
  std::string url() const;
  // The instant vector `promql` evaluates to now.
  absl::StatusOr<std::vector<traffic::Sample>> Query(const std::string& promql) const;
  // The single value of `promql` (a sum, say); an error when it has none or several.
  absl::StatusOr<double> Scalar(const std::string& promql) const;

 private:
  int port_ = 0;
  std::unique_ptr<Process> process_;
  std::string error_;
};

}  // namespace meshplug::integration::harness
