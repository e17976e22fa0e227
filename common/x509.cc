#include "common/x509.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <ctime>
#include <memory>

#include "common/spiffe.h"
#include "common/strings.h"

namespace meshplug::x509 {
namespace {

template <auto Free>
struct Deleter {
  template <typename T>
  void operator()(T* p) const { Free(p); }
};
using Bio = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using Key = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using Cert = std::unique_ptr<X509, Deleter<X509_free>>;
using Req = std::unique_ptr<X509_REQ, Deleter<X509_REQ_free>>;
using Ext = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;
using Names = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES_free>>;

// The reason OpenSSL gave for the last failure, after `what`.
absl::Status OpensslError(std::string_view what) {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  char buf[256] = "unknown reason";
  if (code != 0) ERR_error_string_n(code, buf, sizeof(buf));
  return absl::InvalidArgumentError(Cat(what, ": ", buf));
}

Bio ReadBio(std::string_view pem) { return Bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()))); }

std::string BioText(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(n));
}

absl::StatusOr<Key> ReadKey(std::string_view pem) {
  Bio bio = ReadBio(pem);
  Key key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) return OpensslError("not a PEM private key");
  return key;
}

absl::StatusOr<Cert> ReadCert(std::string_view pem) {
  Bio bio = ReadBio(pem);
  Cert cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return OpensslError("not a PEM certificate");
  return cert;
}

absl::StatusOr<std::string> CertPem(X509* cert) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_X509(bio.get(), cert) != 1) return OpensslError("cannot write the certificate");
  return BioText(bio.get());
}

absl::Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  Ext ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) return OpensslError(Cat("certificate extension ", value));
  return absl::OkStatus();
}

std::string AltNames(const Profile& p) {
  std::vector<std::string> names;
  if (!p.spiffe_id.empty()) names.push_back("URI:" + p.spiffe_id);
  for (const auto& d : p.dns_names) names.push_back("DNS:" + d);
  for (const auto& ip : p.ip_addresses) names.push_back("IP:" + ip);
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ",") + n;
  return out;
}

absl::Status CheckProfile(const Profile& p) {
  // The names go into OpenSSL's extension syntax, where ',' separates names.
  for (const auto& n : {p.common_name, p.spiffe_id}) {
    if (n.find_first_of(",\n") != std::string::npos) return absl::InvalidArgumentError(Cat("\"", n, "\" cannot be a certificate name"));
  }
  for (const auto& list : {p.dns_names, p.ip_addresses}) {
    for (const auto& n : list) {
      if (n.empty() || n.find_first_of(", \n") != std::string::npos) {
        return absl::InvalidArgumentError(Cat("\"", n, "\" cannot be a certificate name"));
      }
    }
  }
  if (p.lifetime.count() <= 0) return absl::InvalidArgumentError("a certificate lifetime must be positive");
  return absl::OkStatus();
}

// A certificate for `subject_key` with `profile`, signed by `issuer_key` (issuer
// certificate `issuer`, or self-signed when null).
absl::StatusOr<std::string> Issue(EVP_PKEY* subject_key, X509* issuer, EVP_PKEY* issuer_key, const Profile& profile) {
  if (auto st = CheckProfile(profile); !st.ok()) return st;
  Cert cert(X509_new());
  X509_set_version(cert.get(), 2);
  std::unique_ptr<BIGNUM, Deleter<BN_free>> serial(BN_new());
  BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY);
  BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get()));
  X509_NAME* subject = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>("meshplug"), -1, -1, 0);
  if (!profile.common_name.empty()) {
    X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(profile.common_name.c_str()), -1, -1, 0);
  }
  X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : subject);
  // A minute of allowance for clocks that differ a little between machines.
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(profile.lifetime.count()));
  X509_set_pubkey(cert.get(), subject_key);
  X509* signer = issuer ? issuer : cert.get();
  std::vector<std::pair<int, std::string>> exts = {
      {NID_basic_constraints, profile.is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE"},
      {NID_key_usage, profile.is_ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature,keyEncipherment"},
      {NID_subject_key_identifier, "hash"},
      {NID_authority_key_identifier, "keyid:always"},
  };
  if (!profile.is_ca) exts.push_back({NID_ext_key_usage, "serverAuth,clientAuth"});
  if (const std::string alt = AltNames(profile); !alt.empty()) exts.push_back({NID_subject_alt_name, alt});
  for (const auto& [nid, value] : exts) {
    if (auto st = AddExtension(cert.get(), signer, nid, value); !st.ok()) return st;
  }
  if (X509_sign(cert.get(), issuer_key, EVP_sha256()) == 0) return OpensslError("cannot sign the certificate");
  return CertPem(cert.get());
}

std::string Hex(const ASN1_OCTET_STRING* s) {
  if (s == nullptr) return "";
  return HexOf(std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                static_cast<size_t>(ASN1_STRING_length(s))));
}

Clock::time_point TimeOf(const ASN1_TIME* t) {
  std::tm tm{};
  ASN1_TIME_to_tm(t, &tm);
  return Clock::from_time_t(timegm(&tm));
}

}  // namespace

absl::StatusOr<std::string> NewPrivateKey() {
  Key key(EVP_EC_gen("P-256"));
  if (!key) return OpensslError("cannot make a P-256 key");
  Bio bio(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return OpensslError("cannot write the key");
  }
  return BioText(bio.get());
}

absl::StatusOr<std::string> MakeCsr(std::string_view key_pem, std::string_view spiffe_id) {
  auto key = ReadKey(key_pem);
  if (!key.ok()) return key.status();
  Req req(X509_REQ_new());
  X509_REQ_set_version(req.get(), 0);
  X509_REQ_set_pubkey(req.get(), key->get());
  if (!spiffe_id.empty()) {
    STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
    const std::string alt = Cat("URI:", spiffe_id);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, alt.c_str());
    if (ext != nullptr) sk_X509_EXTENSION_push(exts, ext);
    const int added = ext != nullptr ? X509_REQ_add_extensions(req.get(), exts) : 0;
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    if (added != 1) return OpensslError("cannot put the identity in the CSR");
  }
  if (X509_REQ_sign(req.get(), key->get(), EVP_sha256()) == 0) return OpensslError("cannot sign the CSR");
  Bio bio(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_X509_REQ(bio.get(), req.get()) != 1) return OpensslError("cannot write the CSR");
  return BioText(bio.get());
}

absl::StatusOr<std::string> SelfSignedCa(std::string_view key_pem, const Profile& profile) {
  auto key = ReadKey(key_pem);
  if (!key.ok()) return key.status();
  return Issue(key->get(), nullptr, key->get(), profile);
}

absl::StatusOr<std::string> SignCsr(std::string_view csr_pem, std::string_view issuer_cert_pem,
                                    std::string_view issuer_key_pem, const Profile& profile) {
  Bio bio = ReadBio(csr_pem);
  Req req(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
  if (!req) return OpensslError("not a PEM certificate signing request");
  EVP_PKEY* pub = X509_REQ_get0_pubkey(req.get());
  if (pub == nullptr || X509_REQ_verify(req.get(), pub) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("the CSR's signature does not verify with its own key");
  }
  if (EVP_PKEY_get_base_id(pub) != EVP_PKEY_EC || EVP_PKEY_get_bits(pub) != 256) {
    return absl::InvalidArgumentError("the CSR's key must be ECDSA P-256");
  }
  auto issuer = ReadCert(issuer_cert_pem);
  if (!issuer.ok()) return issuer.status();
  auto issuer_key = ReadKey(issuer_key_pem);
  if (!issuer_key.ok()) return issuer_key.status();
  return Issue(pub, issuer->get(), issuer_key->get(), profile);
}

namespace {

CertInfo InspectCert(X509* x) {
  CertInfo info;
  X509_NAME* subject = X509_get_subject_name(x);
  if (const int i = X509_NAME_get_index_by_NID(subject, NID_commonName, -1); i >= 0) {
    const ASN1_STRING* cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i));
    info.common_name.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(cn)), ASN1_STRING_length(cn));
  }
  Names names(static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr)));
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names.get(), i);
    if (n->type != GEN_URI) continue;
    std::string uri(reinterpret_cast<const char*>(ASN1_STRING_get0_data(n->d.uniformResourceIdentifier)),
                    ASN1_STRING_length(n->d.uniformResourceIdentifier));
    if (uri.rfind("spiffe://", 0) == 0) info.spiffe_id = uri;
  }
  info.not_before = TimeOf(X509_get0_notBefore(x));
  info.not_after = TimeOf(X509_get0_notAfter(x));
  info.is_ca = X509_check_ca(x) > 0;
  info.self_signed = X509_self_signed(x, 0) == 1;
  info.subject_key_id = Hex(X509_get0_subject_key_id(x));
  info.authority_key_id = Hex(X509_get0_authority_key_id(x));
  ERR_clear_error();
  return info;
}

}  // namespace

absl::StatusOr<Certificate> Certificate::Parse(std::string_view pem) {
  auto cert = ReadCert(pem);
  if (!cert.ok()) return cert.status();
  return Certificate(std::shared_ptr<X509>(cert->release(), X509_free));
}

CertInfo Certificate::Info() const { return InspectCert(cert_.get()); }

bool Certificate::SignedBy(const Certificate& issuer) const {
  EVP_PKEY* key = X509_get0_pubkey(issuer.cert_.get());
  const bool ok = key != nullptr && X509_verify(cert_.get(), key) == 1;
  ERR_clear_error();
  return ok;
}

absl::StatusOr<CertInfo> Inspect(std::string_view pem) {
  auto cert = Certificate::Parse(pem);
  if (!cert.ok()) return cert.status();
  return cert->Info();
}

absl::StatusOr<CertInfo> Inspect(X509* cert) {
  if (cert == nullptr) return absl::NotFoundError("no certificate");
  return InspectCert(cert);
}

absl::StatusOr<std::vector<std::string>> SplitCertificates(std::string_view pem) {
  Bio bio = ReadBio(pem);
  std::vector<std::string> out;
  while (Cert cert{PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)}) {
    auto text = CertPem(cert.get());
    if (!text.ok()) return text.status();
    out.push_back(*std::move(text));
  }
  ERR_clear_error();  // the end of the input reads as an error
  if (out.empty()) return absl::InvalidArgumentError("no PEM certificate found");
  return out;
}

bool SignedBy(std::string_view cert_pem, std::string_view issuer_cert_pem) {
  auto cert = Certificate::Parse(cert_pem);
  auto issuer = Certificate::Parse(issuer_cert_pem);
  ERR_clear_error();
  return cert.ok() && issuer.ok() && cert->SignedBy(*issuer);
}

bool KeyMatches(std::string_view key_pem, std::string_view cert_pem) {
  auto key = ReadKey(key_pem);
  auto cert = ReadCert(cert_pem);
  const bool ok = key.ok() && cert.ok() && X509_check_private_key(cert->get(), key->get()) == 1;
  ERR_clear_error();
  return ok;
}

std::string SpiffeId(std::string_view trust_domain, std::string_view ns, std::string_view service_account) {
  return Cat("spiffe://", trust_domain, "/ns/", ns, "/sa/", service_account);
}

std::string ServiceAccountOf(std::string_view spiffe_id) { return std::string(SpiffeServiceAccount(spiffe_id)); }

}  // namespace meshplug::x509
