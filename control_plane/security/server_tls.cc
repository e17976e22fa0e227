#include "control_plane/security/server_tls.h"

#include <arpa/inet.h>
#include <grpcpp/security/server_credentials.h>
#include <unistd.h>

#include <algorithm>

#include "common/x509.h"

namespace meshplug::control_plane::security {
namespace {

// Long enough to outlive any run of the control plane; it is made anew at each start.
constexpr std::chrono::seconds kServingLifetime{366 * 24 * 3600};

bool IsIp(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

}  // namespace

std::vector<std::string> ServingNames(const std::string& listen_host, const std::vector<std::string>& extra) {
  std::vector<std::string> names = {"localhost", "127.0.0.1", "::1"};
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) == 0 && host[0] != '\0') names.push_back(host);
  std::string h = listen_host;
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (!h.empty() && h != "0.0.0.0" && h != "::") names.push_back(h);
  names.insert(names.end(), extra.begin(), extra.end());
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(const CertificateAuthority& ca,
                                                                               const std::vector<std::string>& names) {
  std::vector<std::string> dns, ips;
  for (const auto& n : names) (IsIp(n) ? ips : dns).push_back(n);
  auto key = x509::NewPrivateKey();
  if (!key.ok()) return key.status();
  auto csr = x509::MakeCsr(*key, "");
  if (!csr.ok()) return csr.status();
  auto chain = ca.SignServer(*csr, dns, ips, kServingLifetime);
  if (!chain.ok()) return chain.status();
  // Access verifies agents' certificates against the CAs trusted at the time of the call:
  // a root added by a CA rotation is trusted without restarting the server.
  grpc::SslServerCredentialsOptions options(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_BUT_DONT_VERIFY);
  options.pem_root_certs = ca.trust_bundle();
  options.pem_key_cert_pairs.push_back({*key, *chain});
  return grpc::SslServerCredentials(options);
}

}  // namespace meshplug::control_plane::security
