// The admin API over a real TLS gRPC connection: every call needs a credential, the
// read-only role cannot change anything, and Watch delivers every change, in order.
#include "control_plane/api/admin_service.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <future>

#include "common/x509.h"
#include "common/xds_types.h"
#include "control_plane/security/server_tls.h"
#include "control_plane/store/sqlite_store.h"
#include "control_plane/xds/snapshot_cache.h"
#include "control_plane/testing/fresh_store.h"

namespace meshplug::control_plane::api {
namespace {

class AdminServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* dir = std::getenv("TEST_TMPDIR");
    store_ = testing::FreshSqliteStore("admin");
    api_ = std::make_unique<ResourceApi>(*store_);
    tokens_ = std::move(*security::TokenIssuer::Open(*store_));
    ca_ = std::move(*security::CertificateAuthority::Open(*store_, {}));
    access_ = std::make_unique<security::Access>(*tokens_, *ca_, *store_);
    agents_ = std::make_unique<xds::SharedAgentStatus>(*store_, registry_, "test");
    rotation_ = std::make_unique<security::CaRotation>(*ca_, [this] { return agents_->List(); }, cache_,
                                                       [this](v1::TrustBundle t) { published_.push_back(t); });
    service_ = std::make_unique<AdminService>(*store_, *api_, cache_, *agents_, *access_, *tokens_, *rotation_);
    grpc::ServerBuilder builder;
    serving_ = std::move(*security::ServingCertificate::Create(*ca_, {"127.0.0.1"}, dir ? dir : "/tmp"));
    builder.AddListeningPort("127.0.0.1:0", serving_->credentials(), &port_);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    stub_ = Stub(tokens_->Issue(security::Role::kAdmin, "", "", std::chrono::seconds(600)));
  }

  // A client verifying the control plane with the mesh's CA, with `token` (none if empty).
  std::unique_ptr<v1::Admin::Stub> Stub(const std::string& token) {
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = ca_->trust_bundle();
    auto creds = grpc::SslCredentials(tls);
    if (!token.empty()) creds = grpc::CompositeChannelCredentials(creds, grpc::AccessTokenCredentials(token));
    return v1::Admin::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port_), creds));
  }

  grpc::Status ApplyWith(v1::Admin::Stub& stub, const std::string& yaml) {
    v1::ApplyRequest req;
    req.add_manifests()->set_content(yaml);
    v1::ApplyResponse resp;
    grpc::ClientContext ctx;
    return stub.Apply(&ctx, req, &resp);
  }

  grpc::Status GetWith(v1::Admin::Stub& stub) {
    v1::GetRequest req;
    req.set_kind("Namespace");
    v1::GetResponse resp;
    grpc::ClientContext ctx;
    return stub.Get(&ctx, req, &resp);
  }

  void TearDown() override { server_->Shutdown(std::chrono::system_clock::now()); }

  void Apply(const std::string& yaml) {
    v1::ApplyRequest req;
    req.add_manifests()->set_content(yaml);
    v1::ApplyResponse resp;
    grpc::ClientContext ctx;
    const grpc::Status st = stub_->Apply(&ctx, req, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }

  std::unique_ptr<store::SqliteStore> store_;
  std::unique_ptr<ResourceApi> api_;
  std::unique_ptr<security::TokenIssuer> tokens_;
  std::unique_ptr<security::CertificateAuthority> ca_;
  std::unique_ptr<security::Access> access_;
  std::unique_ptr<security::ServingCertificate> serving_;
  std::vector<v1::TrustBundle> published_;
  std::unique_ptr<security::CaRotation> rotation_;
  int port_ = 0;
  xds::SnapshotCache cache_;
  xds::AgentRegistry registry_;
  std::unique_ptr<xds::SharedAgentStatus> agents_;
  std::unique_ptr<AdminService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::Admin::Stub> stub_;
};

std::string Ns(const std::string& name, const std::string& label = "x") {
  return "apiVersion: v1\nkind: Namespace\nmetadata: {name: " + name + ", labels: {l: " + label + "}}\n";
}

std::string Describe(const v1::WatchEvent& ev) {
  mesh::v1::Namespace ns;
  ev.object().UnpackTo(&ns);
  return std::to_string(ev.revision()) + " " + ev.type() + " " + ns.metadata().name() + " " +
         ns.metadata().labels().at("l");
}

TEST_F(AdminServiceTest, WatchDeliversEveryChangeInOrder) {
  Apply(Ns("a"));  // revision 1, before the watch
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  v1::WatchRequest req;
  req.set_since_revision(1);
  auto reader = stub_->Watch(&ctx, req);

  Apply(Ns("b") + "---\n" + Ns("c"));  // revision 2
  Apply(Ns("b", "y"));                 // revision 3
  v1::DeleteRequest del;
  auto* ref = del.add_refs();
  ref->set_kind("ns");
  ref->set_name("a");
  v1::DeleteResponse dresp;
  grpc::ClientContext dctx;
  ASSERT_TRUE(stub_->Delete(&dctx, del, &dresp).ok());  // revision 4

  std::vector<std::string> seen;
  v1::WatchEvent ev;
  while (seen.size() < 4 && reader->Read(&ev)) seen.push_back(Describe(ev));
  EXPECT_EQ(seen, (std::vector<std::string>{"2 ADDED b x", "2 ADDED c x", "3 MODIFIED b y",
                                            "4 DELETED a x"}));
  ctx.TryCancel();
}

// A client that goes away while the server's write is in flight: the write may still
// complete successfully after the cancel, and the stream must end anyway, or the
// control plane's shutdown waits for it forever.
TEST_F(AdminServiceTest, AWatchCancelledMidStreamEndsAndShutdownCompletes) {
  Apply(Ns("a"));  // revision 1
  Apply(Ns("b"));  // revision 2
  // Cancelling right after the last event arrives races the server's write completion.
  for (int i = 0; i < 100; ++i) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    v1::WatchRequest req;
    req.set_since_revision(1);
    auto reader = stub_->Watch(&ctx, req);
    v1::WatchEvent ev;
    ASSERT_TRUE(reader->Read(&ev));
    ctx.TryCancel();
    EXPECT_FALSE(reader->Read(&ev));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  auto shutdown = std::async(std::launch::async, [this] { server_->Shutdown(std::chrono::system_clock::now()); });
  if (shutdown.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
    // Waiting on (or destroying) the stuck shutdown would hang the test instead of failing it.
    std::fprintf(stderr, "FAILED: a cancelled watch never finished; the server's shutdown is stuck\n");
    std::_Exit(1);
  }
}

TEST_F(AdminServiceTest, WithoutACredentialNothingIsServed) {
  auto anonymous = Stub("");
  const grpc::Status apply = ApplyWith(*anonymous, Ns("a"));
  EXPECT_EQ(apply.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_NE(apply.error_message().find("needs an admin API credential"), std::string::npos) << apply.error_message();
  EXPECT_EQ(GetWith(*anonymous).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  grpc::ClientContext ctx;
  v1::ConfigDumpRequest dump;
  v1::ConfigDumpResponse dumped;
  EXPECT_EQ(anonymous->ConfigDump(&ctx, dump, &dumped).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  grpc::ClientContext wctx;
  auto reader = anonymous->Watch(&wctx, v1::WatchRequest());
  v1::WatchEvent ev;
  EXPECT_FALSE(reader->Read(&ev));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(api_->Get([] { v1::GetRequest r; r.set_kind("Namespace"); return r; }())->objects().empty());
}

TEST_F(AdminServiceTest, AForgedExpiredOrJoinTokenIsNoAdminCredential) {
  const std::string admin = tokens_->Issue(security::Role::kAdmin, "", "", std::chrono::seconds(600));
  auto forged = Stub(admin.substr(0, admin.size() - 4) + "AAAA");
  EXPECT_EQ(ApplyWith(*forged, Ns("a")).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  auto expired = Stub(tokens_->Issue(security::Role::kAdmin, "", "", std::chrono::seconds(-1)));
  const grpc::Status st = GetWith(*expired);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_NE(st.error_message().find("expired"), std::string::npos);
  auto join = Stub(tokens_->Issue(security::Role::kJoin, "a/b", "b", std::chrono::seconds(600)));
  EXPECT_EQ(GetWith(*join).error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(AdminServiceTest, ReadOnlyReadsButCannotChangeDumpOrMakeTokens) {
  Apply(Ns("a"));
  auto viewer = Stub(tokens_->Issue(security::Role::kReadOnly, "", "", std::chrono::seconds(600)));
  EXPECT_TRUE(GetWith(*viewer).ok());
  const grpc::Status apply = ApplyWith(*viewer, Ns("b"));
  EXPECT_EQ(apply.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(apply.error_message(), "apply needs the admin role; this credential is read-only");
  grpc::ClientContext ctx;
  v1::CreateTokenRequest req;
  req.set_role("admin");
  v1::CreateTokenResponse resp;
  EXPECT_EQ(viewer->CreateToken(&ctx, req, &resp).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(api_->Get([] { v1::GetRequest r; r.set_kind("Namespace"); return r; }())->objects_size(), 1);
}

TEST_F(AdminServiceTest, ReadOnlySeesPluginConfigsWithoutTheirValues) {
  Apply(Ns("curl") +
        "---\napiVersion: config.openservicemesh.io/v1alpha2\nkind: MeshConfig\nmetadata: {name: m}\n"
        "spec: {featureFlags: {enablePluginPolicy: true}}\n---\n"
        "apiVersion: plugin.flomesh.io/v1alpha1\nkind: PluginConfig\nmetadata: {name: c, namespace: curl}\n"
        "spec: {plugin: p, config: {AccessToken: s3cret}, destinationRefs: [{kind: Service, name: web, namespace: curl}]}\n");
  auto get = [&](v1::Admin::Stub& stub) {
    v1::GetRequest req;
    req.set_kind("PluginConfig");
    req.set_namespace_("curl");
    v1::GetResponse resp;
    grpc::ClientContext ctx;
    EXPECT_TRUE(stub.Get(&ctx, req, &resp).ok());
    return resp.DebugString();
  };
  auto viewer = Stub(tokens_->Issue(security::Role::kReadOnly, "", "", std::chrono::seconds(600)));
  const std::string seen = get(*viewer);
  EXPECT_EQ(seen.find("s3cret"), std::string::npos) << seen;
  EXPECT_NE(get(*stub_).find("s3cret"), std::string::npos);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  v1::WatchRequest since;
  since.set_since_revision(1);  // not 0: the stream may open after the apply below
  auto reader = viewer->Watch(&ctx, since);
  Apply("apiVersion: plugin.flomesh.io/v1alpha1\nkind: PluginConfig\nmetadata: {name: c, namespace: curl}\n"
        "spec: {plugin: p, config: {AccessToken: n3w-s3cret}, destinationRefs: [{kind: Service, name: web, namespace: curl}]}\n");
  v1::WatchEvent ev;
  ASSERT_TRUE(reader->Read(&ev));
  EXPECT_EQ(ev.DebugString().find("s3cret"), std::string::npos) << ev.DebugString();
  ctx.TryCancel();
}

TEST_F(AdminServiceTest, JoinTokensAreForValidWorkloadsInExistingNamespaces) {
  Apply(Ns("curl"));
  auto create = [&](const std::string& workload, const std::string& sa, v1::CreateTokenResponse* resp) {
    grpc::ClientContext ctx;
    v1::CreateTokenRequest req;
    req.set_role("join");
    req.set_workload(workload);
    req.set_service_account(sa);
    return stub_->CreateToken(&ctx, req, resp);
  };
  v1::CreateTokenResponse resp;
  ASSERT_TRUE(create("curl/curl-1", "", &resp).ok());
  EXPECT_EQ(resp.spiffe_id(), "spiffe://cluster.local/ns/curl/sa/default");
  EXPECT_EQ(resp.trust_bundle_pem(), ca_->trust_bundle());
  auto claims = tokens_->Verify(resp.token());
  ASSERT_TRUE(claims.ok());
  EXPECT_EQ(claims->subject(), "curl/curl-1");
  EXPECT_NEAR(static_cast<double>(claims->expires_unix() - std::time(nullptr)), 3600, 5);
  EXPECT_EQ(create("nope/curl-1", "", &resp).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(create("curl/Curl_1", "", &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(create("curl", "", &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  const grpc::Status bad_sa = create("curl/curl-1", "a/sa/b", &resp);
  EXPECT_EQ(bad_sa.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(bad_sa.error_message().find("spec.serviceAccount"), std::string::npos) << bad_sa.error_message();

  // Labels: checked like an applied Workload's, and only a join token carries them.
  grpc::ClientContext ctx;
  v1::CreateTokenRequest req;
  req.set_role("join");
  req.set_workload("curl/curl-2");
  (*req.mutable_labels())[""] = "x";
  const grpc::Status empty_key = stub_->CreateToken(&ctx, req, &resp);
  EXPECT_EQ(empty_key.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(empty_key.error_message().find("metadata.labels"), std::string::npos) << empty_key.error_message();
  grpc::ClientContext ctx2;
  req.set_role("admin");
  req.clear_workload();
  EXPECT_EQ(stub_->CreateToken(&ctx2, req, &resp).error_message(), "workload, labels: only join and xds tokens are for a workload");
}

TEST_F(AdminServiceTest, CaRotationIsForAdminsAndFinishesOnlyOnceAgentsHoldNewCertificates) {
  auto rotate = [&](v1::Admin::Stub& stub, const std::string& step, bool force, v1::CaStatus* out) {
    grpc::ClientContext ctx;
    v1::RotateCaRequest req;
    req.set_step(step);
    req.set_force(force);
    return stub.RotateCa(&ctx, req, out);
  };
  v1::CaStatus status;
  auto viewer = Stub(tokens_->Issue(security::Role::kReadOnly, "", "", std::chrono::seconds(600)));
  ASSERT_TRUE(rotate(*viewer, "", false, &status).ok());
  EXPECT_EQ(status.phase(), "steady");
  const std::string old_id = status.signer_key_id();
  EXPECT_EQ(rotate(*viewer, "start", false, &status).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(rotate(*stub_, "begin", false, &status).error_message(), "step \"begin\": expected start, activate or finish");

  ASSERT_TRUE(rotate(*stub_, "start", false, &status).ok());
  EXPECT_EQ(status.phase(), "started");
  ASSERT_EQ(status.cas_size(), 2);
  const std::string new_id = status.cas(1).key_id();
  EXPECT_EQ(published_.back().roots_pem_size(), 2);
  EXPECT_EQ(published_.back().signer_key_id(), old_id);

  registry_.Connected("curl/curl-1", "delta", "ipv4:127.0.0.1:1", {"spiffe://cluster.local/ns/curl/sa/default", "", old_id});
  // Its latest settings (with the new root) are not ACKed yet: activating would make it
  // refuse peers with new certificates.
  auto latest = std::make_shared<xds::AgentResources>();
  const std::string& settings_url = xds_types::UrlOf<v1::AgentSettings>();
  latest->type_versions[settings_url] = "with-new-root";
  cache_.Set("curl/curl-1", latest);
  const grpc::Status unsynced = rotate(*stub_, "activate", false, &status);
  EXPECT_EQ(unsynced.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(unsynced.error_message().find("curl/curl-1"), std::string::npos) << unsynced.error_message();
  registry_.Acked("curl/curl-1", settings_url, "with-new-root");
  ASSERT_TRUE(rotate(*stub_, "activate", false, &status).ok());
  EXPECT_EQ(published_.back().signer_key_id(), new_id);
  ASSERT_EQ(status.agents_not_on_signer_size(), 1);
  const grpc::Status early = rotate(*stub_, "finish", false, &status);
  EXPECT_EQ(early.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(early.error_message().find("curl/curl-1"), std::string::npos) << early.error_message();

  registry_.CertificateIssued("curl/curl-1", {"spiffe://cluster.local/ns/curl/sa/default", "", new_id});
  // An agent away now returns with the certificate it had: it counts as well.
  const uint64_t away = registry_.Connected("curl/curl-2", "delta", "ipv4:127.0.0.1:2",
                                            {"spiffe://cluster.local/ns/curl/sa/default", "", old_id});
  registry_.Disconnected("curl/curl-2", away);
  const grpc::Status still = rotate(*stub_, "finish", false, &status);
  EXPECT_NE(still.error_message().find("curl/curl-2 (disconnected)"), std::string::npos) << still.error_message();
  registry_.ForgetIfDisconnected("curl/curl-2");  // its Workload was deleted
  ASSERT_TRUE(rotate(*stub_, "finish", false, &status).ok());
  EXPECT_EQ(status.phase(), "steady");
  EXPECT_EQ(status.signer_key_id(), new_id);
  EXPECT_EQ(published_.back().roots_pem_size(), 1);
  EXPECT_EQ(published_.back().issuer_key_ids(0), new_id);
}

}  // namespace
}  // namespace meshplug::control_plane::api
