#include "control_plane/security/identity_service.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "common/x509.h"
#include "control_plane/store/sqlite_store.h"
#include "meshplug/v1/resources.pb.h"
#include "control_plane/testing/fresh_store.h"

namespace meshplug::control_plane::security {
namespace {

absl::Status Verify(const CertificateAuthority& ca, const std::string& leaf) {
  auto cert = x509::Certificate::Parse(leaf);
  return cert.ok() ? ca.VerifyIssued(*cert, cert->Info()) : cert.status();
}

class IdentityServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = testing::FreshSqliteStore("identity");
    tokens_ = *TokenIssuer::Open(*store_);
    ca_ = *CertificateAuthority::Open(*store_, {});
    access_ = std::make_unique<Access>(*tokens_, *ca_, *store_);
    service_ = std::make_unique<IdentityService>(*store_, *ca_, *access_, *tokens_);
    for (const char* ns : {"curl", "httpbin"}) SetNamespace(ns, true);
  }

  void SetNamespace(const std::string& name, bool exists) {
    mesh::v1::Namespace ns;
    ns.mutable_metadata()->set_name(name);
    ASSERT_TRUE(store_->Commit({store::Write{resources::Key{resources::Kind::kNamespace, "", name},
                                             exists ? std::optional<std::string>(ns.SerializeAsString()) : std::nullopt,
                                             std::nullopt}})
                    .ok());
  }

  Caller Joining(const std::string& workload, const std::string& sa) {
    Caller c;
    c.token = *tokens_->Verify(tokens_->Issue(Role::kJoin, workload, sa, std::chrono::seconds(60)));
    return c;
  }

  v1::SignRequest Request(const std::string& node, const std::string& claimed_identity = "") {
    v1::SignRequest req;
    req.set_node_id(node);
    req.set_csr_pem(*x509::MakeCsr(*x509::NewPrivateKey(), claimed_identity));
    return req;
  }

  std::unique_ptr<store::SqliteStore> store_;
  std::unique_ptr<TokenIssuer> tokens_;
  std::unique_ptr<CertificateAuthority> ca_;
  std::unique_ptr<Access> access_;
  std::unique_ptr<IdentityService> service_;
};

TEST_F(IdentityServiceTest, ACsrClaimingAnotherIdentityGetsTheAuthenticatedOne) {
  v1::SignResponse resp;
  const Caller caller = Joining("curl/curl", "curl");
  auto st = service_->SignFor(caller, Request("curl/curl", "spiffe://cluster.local/ns/httpbin/sa/httpbin"), &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  auto info = x509::Inspect(resp.certificate_chain_pem());
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->spiffe_id, "spiffe://cluster.local/ns/curl/sa/curl");
  EXPECT_EQ(info->common_name, "curl/curl");
  EXPECT_EQ(resp.trust_bundle_pem(), ca_->trust_bundle());
  EXPECT_EQ(resp.certificate_chain_pem().find("PRIVATE KEY"), std::string::npos);
}

TEST_F(IdentityServiceTest, ATokenForOneWorkloadGetsNoCertificateForAnother) {
  v1::SignResponse resp;
  auto st = service_->SignFor(Joining("curl/curl", "curl"), Request("httpbin/httpbin"), &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(resp.certificate_chain_pem().empty());
}

TEST_F(IdentityServiceTest, AReplayedJoinTokenIsRefusedButABadCsrDoesNotBurnIt) {
  const Caller caller = Joining("curl/curl", "curl");
  v1::SignResponse resp;
  v1::SignRequest bad = Request("curl/curl");
  bad.set_csr_pem("not a csr");
  EXPECT_EQ(service_->SignFor(caller, bad, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(service_->SignFor(caller, Request("curl/curl"), &resp).ok());
  auto replay = service_->SignFor(caller, Request("curl/curl"), &resp);
  EXPECT_EQ(replay.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_NE(replay.error_message().find("already used"), std::string::npos);
}

TEST_F(IdentityServiceTest, RenewalKeepsTheCertificatesIdentityAndNeedsNoToken) {
  Caller renewing;
  renewing.workload = "curl/curl";
  renewing.spiffe_id = "spiffe://cluster.local/ns/curl/sa/curl";
  v1::SignResponse resp;
  ASSERT_TRUE(service_->SignFor(renewing, Request("curl/curl", "spiffe://x/ns/kube-system/sa/admin"), &resp).ok());
  EXPECT_EQ(x509::Inspect(resp.certificate_chain_pem())->spiffe_id, renewing.spiffe_id);
  EXPECT_EQ(service_->SignFor(renewing, Request("httpbin/httpbin"), &resp).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(IdentityServiceTest, ADeletedNamespaceEndsRenewals) {
  Caller renewing;
  renewing.workload = "curl/curl";
  renewing.spiffe_id = "spiffe://cluster.local/ns/curl/sa/curl";
  v1::SignResponse resp;
  SetNamespace("curl", false);
  const grpc::Status st = service_->SignFor(renewing, Request("curl/curl"), &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(st.error_message(), "namespace \"curl\" does not exist");
}

TEST_F(IdentityServiceTest, NoCredentialOrAnAdminTokenGetsNoWorkloadCertificate) {
  v1::SignResponse resp;
  EXPECT_EQ(service_->SignFor(Caller{}, Request("curl/curl"), &resp).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  Caller admin;
  admin.token = *tokens_->Verify(tokens_->Issue(Role::kAdmin, "", "", std::chrono::seconds(60)));
  EXPECT_EQ(service_->SignFor(admin, Request("curl/curl"), &resp).error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

// An operator's CA: an intermediate under a corporate root.
struct CorpCa {
  x509::Profile root_profile = [] {
    x509::Profile p;
    p.is_ca = true;
    p.common_name = "corp root";
    return p;
  }();
  std::string root_key = *x509::NewPrivateKey();
  std::string root_cert = *x509::SelfSignedCa(root_key, root_profile);
  std::string inter_key = *x509::NewPrivateKey();
  std::string inter_cert = [this] {
    x509::Profile inter = root_profile;
    inter.common_name = "mesh intermediate";
    return *x509::SignCsr(*x509::MakeCsr(inter_key, ""), root_cert, root_key, inter);
  }();
};

TEST(CertificateAuthorityTest, TheStoresCaIsMadeOnceAndAnOperatorsCaMustBeConsistent) {
  const std::string dir = std::getenv("TEST_TMPDIR");
  const std::string path = testing::FreshStorePath("ca");
  std::string bundle;
  {
    auto store = *store::SqliteStore::Open(path);
    bundle = (*CertificateAuthority::Open(*store, {}))->trust_bundle();
  }
  auto store = *store::SqliteStore::Open(path);
  EXPECT_EQ((*CertificateAuthority::Open(*store, {}))->trust_bundle(), bundle);
  EXPECT_EQ(bundle.find("PRIVATE"), std::string::npos);

  // An intermediate under a corporate root, with a key that is not its own.
  const CorpCa corp;
  const std::string &root_key = corp.root_key, &root_cert = corp.root_cert, &inter_key = corp.inter_key,
                    &inter_cert = corp.inter_cert;
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir + "/" + name) << text;
    return dir + "/" + name;
  };
  auto ca = CertificateAuthority::Open(*store, {write("chain.pem", inter_cert + root_cert), write("key.pem", inter_key)});
  ASSERT_TRUE(ca.ok()) << ca.status();
  EXPECT_EQ((*ca)->trust_bundle(), root_cert);
  auto chain = (*ca)->SignWorkload(*x509::MakeCsr(*x509::NewPrivateKey(), ""), "corp.example", "a", "b", "c",
                                   std::chrono::seconds(60));
  ASSERT_TRUE(chain.ok());
  EXPECT_EQ(x509::SplitCertificates(*chain)->size(), 2u);  // leaf + intermediate
  EXPECT_EQ((*ca)->StartRotation("", "").code(), absl::StatusCode::kFailedPrecondition);

  auto wrong_key = CertificateAuthority::Open(*store, {dir + "/chain.pem", write("other.pem", root_key)});
  ASSERT_FALSE(wrong_key.ok());
  EXPECT_NE(wrong_key.status().message().find("not the CA certificate's key"), std::string::npos);
  auto no_root = CertificateAuthority::Open(*store, {write("inter.pem", inter_cert), dir + "/key.pem"});
  ASSERT_FALSE(no_root.ok());
  EXPECT_NE(no_root.status().message().find("self-signed root"), std::string::npos);
  EXPECT_FALSE(CertificateAuthority::Open(*store, {dir + "/chain.pem", ""}).ok());
}

// Start, activate, finish: both CAs trusted in between, signing moves at activation, the
// old CA's certificates stop counting at finish, and a restart resumes each phase.
TEST(CertificateAuthorityTest, RotationTrustsBothThenSignsWithTheNewThenDropsTheOld) {
  auto store = testing::FreshSqliteStore("rotation");
  auto ca = *CertificateAuthority::Open(*store, {});
  auto leaf = [&] {
    return *ca->SignWorkload(*x509::MakeCsr(*x509::NewPrivateKey(), ""), "cluster.local", "a", "b", "c",
                             std::chrono::seconds(60));
  };
  auto reopen = [&] { ca = *CertificateAuthority::Open(*store, {}); };
  const std::string old_id = ca->trust().signer_key_id();
  const std::string old_leaf = leaf();
  EXPECT_EQ(ca->ActivateRotation().message(), "no CA rotation is under way: start one first");
  EXPECT_EQ(ca->FinishRotation().message(), "no CA rotation is under way: start one first");

  ASSERT_TRUE(ca->StartRotation("", "").ok());
  reopen();
  EXPECT_EQ(ca->phase(), CertificateAuthority::Phase::kStarted);
  EXPECT_EQ(ca->trust().roots_pem_size(), 2);
  EXPECT_EQ(ca->trust().issuer_key_ids_size(), 2);
  EXPECT_EQ(ca->trust().signer_key_id(), old_id);
  const std::string new_id = ca->trust().issuer_key_ids(1);
  EXPECT_EQ(x509::Inspect(leaf())->authority_key_id, old_id);
  EXPECT_EQ(ca->StartRotation("", "").message(), "a CA rotation is already under way: activate or finish it first");
  EXPECT_EQ(ca->FinishRotation().message(), "the new CA does not sign yet: activate the rotation first");

  ASSERT_TRUE(ca->ActivateRotation().ok());
  reopen();
  EXPECT_EQ(ca->phase(), CertificateAuthority::Phase::kActivated);
  EXPECT_EQ(ca->trust().signer_key_id(), new_id);
  const std::string new_leaf = leaf();
  EXPECT_EQ(x509::Inspect(new_leaf)->authority_key_id, new_id);
  EXPECT_TRUE(Verify(*ca, old_leaf).ok());
  EXPECT_TRUE(Verify(*ca, new_leaf).ok());

  ASSERT_TRUE(ca->FinishRotation().ok());
  reopen();
  EXPECT_EQ(ca->phase(), CertificateAuthority::Phase::kSteady);
  EXPECT_EQ(ca->trust().roots_pem_size(), 1);
  EXPECT_EQ(ca->trust().signer_key_id(), new_id);
  EXPECT_TRUE(Verify(*ca, new_leaf).ok());
  EXPECT_EQ(Verify(*ca, old_leaf).message(), "the client certificate was not issued by this mesh's CA");
  EXPECT_EQ(ca->trust_bundle().find("PRIVATE"), std::string::npos);
}

TEST(CertificateAuthorityTest, RotationBringsInAnOperatorsCaAndRefusesBadOnes) {
  auto store = testing::FreshSqliteStore("rotation-operator");
  auto ca = *CertificateAuthority::Open(*store, {});
  const CorpCa corp;
  const std::string &root_key = corp.root_key, &root_cert = corp.root_cert, &inter_key = corp.inter_key,
                    &inter_cert = corp.inter_cert;

  EXPECT_EQ(ca->StartRotation(inter_cert + root_cert, "").message(),
            "the new CA's certificate and key go together: give both or neither");
  EXPECT_EQ(ca->StartRotation(inter_cert + root_cert, root_key).message(), "the new CA: the key is not the CA certificate's key");
  // An intermediate with a root that did not sign it: peers could not verify its leaves.
  const std::string other_root = *x509::SelfSignedCa(*x509::NewPrivateKey(), corp.root_profile);
  EXPECT_EQ(ca->StartRotation(inter_cert + other_root, inter_key).message(),
            "the new CA: certificate 1 of the chain is not signed by certificate 2; give the CA certificate, then its "
            "issuers up to the root");
  EXPECT_NE(ca->StartRotation("garbage", inter_key).message().find("the new CA: "), std::string::npos);
  EXPECT_EQ(ca->phase(), CertificateAuthority::Phase::kSteady);
  ASSERT_TRUE(ca->StartRotation(inter_cert + root_cert, inter_key).ok());
  ASSERT_TRUE(ca->ActivateRotation().ok());
  ASSERT_TRUE(ca->FinishRotation().ok());
  ca = *CertificateAuthority::Open(*store, {});
  EXPECT_EQ(ca->trust_bundle(), root_cert);
  auto chain = ca->SignWorkload(*x509::MakeCsr(*x509::NewPrivateKey(), ""), "cluster.local", "a", "b", "c",
                                std::chrono::seconds(60));
  ASSERT_TRUE(chain.ok());
  EXPECT_EQ(x509::SplitCertificates(*chain)->size(), 2u);  // leaf + intermediate
}

}  // namespace
}  // namespace meshplug::control_plane::security
