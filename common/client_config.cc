#include "common/client_config.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>

#include "common/files.h"
#include "common/strings.h"

namespace meshplug {

std::string DefaultClientConfigPath() {
  if (const char* home = std::getenv("MESHPLUG_HOME")) return std::string(home) + "/config";
  const char* home = std::getenv("HOME");
  return std::string(home ? home : ".") + "/.config/meshplug/config";
}

absl::StatusOr<ClientConfig> ReadClientConfig(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return absl::NotFoundError(Cat("no credentials file ", path,
                                   " (the control plane writes it at start; give another with --config)"));
  }
  try {
    const YAML::Node doc = YAML::LoadFile(path);
    if (!doc.IsMap()) return absl::InvalidArgumentError(Cat(path, ": not a meshplug credentials file"));
    ClientConfig c;
    for (const auto& kv : doc) {
      const std::string key = kv.first.as<std::string>();
      std::string* field = key == "server"  ? &c.server
                           : key == "token" ? &c.token
                           : key == "ca"    ? &c.ca_pem
                           : key == "http"  ? &c.http
                                            : nullptr;
      if (field == nullptr) return absl::InvalidArgumentError(Cat(path, ": unknown key \"", key, "\""));
      *field = kv.second.as<std::string>();
    }
    return c;
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(Cat(path, ": ", e.what()));
  }
}

absl::Status WriteClientConfig(const std::string& path, const ClientConfig& config) {
  YAML::Emitter out;
  out << YAML::Comment("meshplug admin API credentials, written by the control plane. Keep this file private.");
  out << YAML::BeginMap << YAML::Key << "server" << YAML::Value << config.server << YAML::Key << "token"
      << YAML::Value << config.token;
  if (!config.http.empty()) out << YAML::Key << "http" << YAML::Value << config.http;
  out << YAML::Key << "ca" << YAML::Value << YAML::Literal << config.ca_pem << YAML::EndMap;
  return WritePrivateFile(path, Cat(out.c_str(), "\n"));
}

}  // namespace meshplug
