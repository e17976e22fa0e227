#include "common/x509.h"

#include <gtest/gtest.h>

namespace meshplug::x509 {
namespace {

struct Ca {
  std::string key, cert;
};

Ca MakeCa() {
  Ca ca;
  ca.key = *NewPrivateKey();
  Profile p;
  p.common_name = "meshplug root";
  p.is_ca = true;
  p.lifetime = std::chrono::hours(24 * 365);
  ca.cert = *SelfSignedCa(ca.key, p);
  return ca;
}

TEST(X509Test, TheCaIsSelfSignedAndACa) {
  const Ca ca = MakeCa();
  auto info = Inspect(ca.cert);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(info->is_ca);
  EXPECT_TRUE(info->self_signed);
  EXPECT_EQ(info->common_name, "meshplug root");
  EXPECT_TRUE(KeyMatches(ca.key, ca.cert));
}

TEST(X509Test, TheSignerDecidesTheIdentityNotTheCsr) {
  const Ca ca = MakeCa();
  const std::string key = *NewPrivateKey();
  auto csr = MakeCsr(key, "spiffe://cluster.local/ns/kube-system/sa/admin");
  ASSERT_TRUE(csr.ok()) << csr.status();
  Profile p;
  p.common_name = "curl/curl";
  p.spiffe_id = SpiffeId("cluster.local", "curl", "curl");
  p.lifetime = std::chrono::seconds(3600);
  auto cert = SignCsr(*csr, ca.cert, ca.key, p);
  ASSERT_TRUE(cert.ok()) << cert.status();
  auto info = Inspect(*cert);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->spiffe_id, "spiffe://cluster.local/ns/curl/sa/curl");
  EXPECT_EQ(info->common_name, "curl/curl");
  EXPECT_FALSE(info->is_ca);
  EXPECT_FALSE(info->self_signed);
  EXPECT_TRUE(KeyMatches(key, *cert));
  EXPECT_FALSE(KeyMatches(ca.key, *cert));
  EXPECT_EQ(info->authority_key_id, Inspect(ca.cert)->subject_key_id);
  EXPECT_EQ(info->authority_key_id.size(), 40u);  // SHA-1 of the CA's key, in hex
  EXPECT_TRUE(SignedBy(*cert, ca.cert));
  EXPECT_FALSE(SignedBy(*cert, MakeCa().cert));  // another CA's key
  EXPECT_FALSE(SignedBy("garbage", ca.cert));
  // Parsed once, the same answers.
  auto parsed = Certificate::Parse(*cert);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->Info().spiffe_id, info->spiffe_id);
  EXPECT_EQ(parsed->Info().not_after, info->not_after);
  auto issuer = Certificate::Parse(ca.cert);
  auto other = Certificate::Parse(MakeCa().cert);
  ASSERT_TRUE(issuer.ok() && other.ok());
  EXPECT_TRUE(parsed->SignedBy(*issuer));
  EXPECT_FALSE(parsed->SignedBy(*other));
  EXPECT_FALSE(parsed->SignedBy(*parsed));  // not self-signed
  const auto life = std::chrono::duration_cast<std::chrono::seconds>(info->not_after - info->not_before);
  EXPECT_EQ(life.count(), 3600 + 60);  // one minute of allowance for clock skew
}

TEST(X509Test, ACsrWhoseSignatureDoesNotVerifyIsRefused) {
  const Ca ca = MakeCa();
  std::string csr = *MakeCsr(*NewPrivateKey(), "");
  // Flip a character inside the base64 body (the signature is at the end).
  const size_t end = csr.find("-----END");
  csr[end - 10] = csr[end - 10] == 'A' ? 'B' : 'A';
  auto cert = SignCsr(csr, ca.cert, ca.key, Profile{"x", "", {}, {}, false, std::chrono::seconds(60)});
  ASSERT_FALSE(cert.ok());
}

TEST(X509Test, GarbageIsNamedNotCrashedOn) {
  EXPECT_FALSE(Inspect("hello").ok());
  EXPECT_EQ(std::string(Certificate::Parse("hello").status().message()).substr(0, 21), "not a PEM certificate");
  EXPECT_FALSE(SplitCertificates("").ok());
  const Ca ca = MakeCa();
  EXPECT_EQ(std::string(SignCsr("garbage", ca.cert, ca.key, Profile{}).status().message()).substr(0, 38),
            "not a PEM certificate signing request:");
  EXPECT_FALSE(KeyMatches("x", ca.cert));
}

TEST(X509Test, NamesThatWouldChangeTheExtensionSyntaxAreRefused) {
  const Ca ca = MakeCa();
  const std::string csr = *MakeCsr(*NewPrivateKey(), "");
  Profile p;
  p.spiffe_id = "spiffe://td/ns/a/sa/b,URI:spiffe://td/ns/kube-system/sa/admin";
  EXPECT_FALSE(SignCsr(csr, ca.cert, ca.key, p).ok());
}

TEST(X509Test, ServerNamesAndChains) {
  const Ca ca = MakeCa();
  Profile p;
  p.common_name = "control plane";
  p.dns_names = {"localhost"};
  p.ip_addresses = {"127.0.0.1", "::1"};
  auto cert = SignCsr(*MakeCsr(*NewPrivateKey(), ""), ca.cert, ca.key, p);
  ASSERT_TRUE(cert.ok()) << cert.status();
  auto certs = SplitCertificates(*cert + ca.cert);
  ASSERT_TRUE(certs.ok());
  ASSERT_EQ(certs->size(), 2u);
  EXPECT_EQ((*certs)[1], ca.cert);
}

}  // namespace
}  // namespace meshplug::x509
