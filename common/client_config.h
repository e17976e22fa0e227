// meshctl's credentials file (like a kubeconfig): where the control plane is, the roots
// that verify it, and an admin API token. The control plane writes it at start (mode
// 0600) and meshctl reads it by default.
//
//   server: 127.0.0.1:15010
//   token: mpt1.…
//   http: 127.0.0.1:15014      (the HTTP pages, when --http_listen serves them)
//   ca: |
//     -----BEGIN CERTIFICATE-----
//     …
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace meshplug {

struct ClientConfig {
  std::string server;
  std::string token;
  std::string ca_pem;
  std::string http;  // "" when the control plane serves no HTTP pages
};

// $MESHPLUG_HOME/config, else ~/.config/meshplug/config.
std::string DefaultClientConfigPath();

absl::StatusOr<ClientConfig> ReadClientConfig(const std::string& path);
// Replaces the file atomically, readable by its owner only (the directory is made 0700).
absl::Status WriteClientConfig(const std::string& path, const ClientConfig& config);

}  // namespace meshplug
