#include "control_plane/security/server_tls.h"

#include <arpa/inet.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/conf.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "common/eventually.h"
#include "common/files.h"
#include "common/log.h"
#include "common/strings.h"
#include "common/x509.h"

namespace meshplug::control_plane::security {
namespace {

// Long enough to outlive any run of the control plane; it is made anew at each start.
constexpr std::chrono::seconds kServingLifetime{366 * 24 * 3600};

bool IsIp(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

// The subject key id of the certificate a TLS server at `address` ("host:port") presents;
// "" when there is none to be had.
std::string ServedKeyId(const std::string& address) {
  const size_t colon = address.rfind(':');
  std::string host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  BIO* bio = BIO_new_ssl_connect(ctx);
  SSL* ssl = nullptr;
  BIO_get_ssl(bio, &ssl);
  BIO_set_conn_hostname(bio, host.c_str());
  BIO_set_conn_port(bio, address.substr(colon + 1).c_str());
  std::string key_id;
  if (BIO_do_connect(bio) == 1 && BIO_do_handshake(bio) == 1) {
    X509* cert = SSL_get1_peer_certificate(ssl);
    if (auto info = x509::Inspect(cert); info.ok()) key_id = info->subject_key_id;
    X509_free(cert);
  }
  BIO_free_all(bio);
  SSL_CTX_free(ctx);
  ERR_clear_error();
  return key_id;
}

// Whether OpenSSL's configuration file names TLS settings (an ssl_conf module), which
// ours would replace.
bool MachineHasTlsSettings() {
  char* path = CONF_get1_default_config_file();
  CONF* conf = NCONF_new(nullptr);
  long line = 0;
  bool has = false;
  if (path && NCONF_load(conf, path, &line) > 0) {
    const char* init = NCONF_get_string(conf, nullptr, "openssl_conf");
    has = init && NCONF_get_string(conf, init, "ssl_conf");
  }
  NCONF_free(conf);
  OPENSSL_free(path);
  ERR_clear_error();
  return has;
}

}  // namespace

TicketSetting IssueNoSessionTickets() {
  // Registers the built-in "ssl_conf" module and loads the machine's configuration; ours
  // goes over it (loading it again later would not undo ours).
  OPENSSL_init_ssl(OPENSSL_INIT_LOAD_CONFIG, nullptr);
  if (MachineHasTlsSettings()) {
    log::Info("OpenSSL's configuration has TLS settings of its own: the control plane keeps them, and issues "
              "TLS session tickets if they say so");
    return TicketSetting::kMachineSettingsKept;
  }
  static constexpr char kConf[] =
      "openssl_conf = meshplug\n[meshplug]\nssl_conf = meshplug_ssl\n[meshplug_ssl]\n"
      "system_default = meshplug_tls\n[meshplug_tls]\nNumTickets = 0\n";
  CONF* conf = NCONF_new(nullptr);
  BIO* bio = BIO_new_mem_buf(kConf, sizeof kConf - 1);
  long line = 0;
  const bool loaded = NCONF_load_bio(conf, bio, &line) > 0 && CONF_modules_load(conf, nullptr, 0) > 0;
  if (!loaded) {
    char why[256] = "unknown";
    if (const unsigned long e = ERR_peek_last_error()) ERR_error_string_n(e, why, sizeof why);
    log::Warn("cannot turn TLS session tickets off; the control plane issues them", {{"error", why}});
  }
  BIO_free(bio);
  NCONF_free(conf);
  ERR_clear_error();
  return loaded ? TicketSetting::kApplied : TicketSetting::kFailed;
}

std::vector<std::string> ServingNames(const std::string& listen_host, const std::vector<std::string>& extra) {
  std::vector<std::string> names = {"localhost", "127.0.0.1", "::1"};
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) == 0 && host[0] != '\0') names.push_back(host);
  std::string h = listen_host;
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (!h.empty() && !IsAnyAddress(h)) names.push_back(h);
  names.insert(names.end(), extra.begin(), extra.end());
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

absl::StatusOr<std::unique_ptr<ServingCertificate>> ServingCertificate::Create(const CertificateAuthority& ca,
                                                                              std::vector<std::string> names,
                                                                              const std::string& dir) {
  std::string tmpl = (std::filesystem::path(dir) / ".serving-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) {
    return absl::UnavailableError(Cat("cannot make a private directory in ", dir, " for the serving certificate: ",
                                      std::strerror(errno)));
  }
  std::unique_ptr<ServingCertificate> serving(new ServingCertificate(ca, std::move(names), tmpl));
  if (auto st = serving->Follow(); !st.ok()) return st;
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      serving->dir_ + "/current/key.pem", serving->dir_ + "/current/chain.pem", /*refresh_interval_sec=*/1);
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  // Access verifies agents' certificates against the CAs trusted at the time of the call:
  // a root added by a CA rotation is trusted without restarting the server.
  options.set_cert_request_type(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_BUT_DONT_VERIFY);
  serving->credentials_ = grpc::experimental::TlsServerCredentials(options);
  return serving;
}

ServingCertificate::~ServingCertificate() {
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

absl::Status ServingCertificate::Follow(const std::string& address, std::chrono::milliseconds timeout) {
  if (ca_.Describe().front().key_id == issuer_key_id_) return absl::OkStatus();
  std::vector<std::string> dns, ips;
  for (const auto& n : names_) (IsIp(n) ? ips : dns).push_back(n);
  auto key = x509::NewPrivateKey();
  if (!key.ok()) return key.status();
  auto csr = x509::MakeCsr(*key, "");
  if (!csr.ok()) return csr.status();
  auto chain = ca_.SignServer(*csr, dns, ips, kServingLifetime);
  if (!chain.ok()) return chain.status();
  // Key and certificate in a new directory, then one rename of the `current` link: the
  // watcher reads the old pair or the new one, never a key with the other's certificate
  // (gRPC 1.51 takes such a pair and stops serving TLS).
  const std::string generation = Cat("gen-", ++generation_);
  if (auto st = WritePrivateFile(Cat(dir_, "/", generation, "/chain.pem"), *chain); !st.ok()) return st;
  if (auto st = WritePrivateFile(Cat(dir_, "/", generation, "/key.pem"), *key); !st.ok()) return st;
  const std::string link = dir_ + "/current.new";
  std::error_code ec;
  std::filesystem::remove(link, ec);
  std::filesystem::create_directory_symlink(generation, link, ec);
  if (!ec) std::filesystem::rename(link, dir_ + "/current", ec);
  if (ec) return absl::UnavailableError(Cat("cannot switch the serving certificate in ", dir_, ": ", ec.message()));
  // The one before the previous goes: nothing reads it any more.
  std::filesystem::remove_all(Cat(dir_, "/gen-", generation_ - 2), ec);
  const auto leaf = x509::Inspect(*chain);
  issuer_key_id_ = leaf->authority_key_id;
  if (address.empty()) return absl::OkStatus();
  const std::string expected = leaf->subject_key_id;
  if (!Eventually([&] { return ServedKeyId(address) == expected; }, timeout, std::chrono::milliseconds(50))) {
    return absl::DeadlineExceededError(Cat("the renewed serving certificate was not served at ", address, " within ",
                                           timeout.count(), " ms"));
  }
  return absl::OkStatus();
}

}  // namespace meshplug::control_plane::security
