#include "net/prometheus_query.h"

#include <chrono>

#include "common/strings.h"
#include "net/http_client.h"

namespace meshplug::net {

absl::StatusOr<std::vector<traffic::Sample>> QueryPrometheus(const std::string& url, const std::string& promql) {
  if (!url.starts_with("http://")) {
    return absl::InvalidArgumentError(Cat("\"", url, "\" is not http://HOST:PORT[/PATH] (https is not supported)"));
  }
  const std::string rest = url.substr(7);
  const size_t slash = rest.find('/');
  std::string prefix = slash == std::string::npos ? "" : rest.substr(slash);
  while (prefix.ends_with('/')) prefix.pop_back();
  absl::StatusOr<std::string> body =
      HttpGet(rest.substr(0, slash), Cat(prefix, "/api/v1/query?query=", UrlEncode(promql)), std::chrono::seconds(10));
  if (!body.ok()) return body.status();
  return traffic::ParseQueryResult(*body);
}

}  // namespace meshplug::net
