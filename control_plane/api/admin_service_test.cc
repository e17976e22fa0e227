// The admin API over a real gRPC connection: Watch delivers every change, in order.
#include "control_plane/api/admin_service.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "control_plane/store/sqlite_store.h"
#include "control_plane/xds/snapshot_cache.h"

namespace meshplug::control_plane::api {
namespace {

class AdminServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* dir = std::getenv("TEST_TMPDIR");
    const std::string path = std::string(dir ? dir : "/tmp") + "/admin.db";
    for (const char* s : {"", "-wal", "-shm", ".lock"}) std::filesystem::remove(path + s);
    store_ = std::move(*store::SqliteStore::Open(path));
    api_ = std::make_unique<ResourceApi>(*store_);
    service_ = std::make_unique<AdminService>(*store_, *api_, cache_, registry_);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    stub_ = v1::Admin::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                                   grpc::InsecureChannelCredentials()));
  }

  void TearDown() override { server_->Shutdown(std::chrono::system_clock::now()); }

  void Apply(const std::string& yaml) {
    v1::ApplyRequest req;
    req.add_manifests()->set_content(yaml);
    v1::ApplyResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->Apply(&ctx, req, &resp).ok());
  }

  std::unique_ptr<store::SqliteStore> store_;
  std::unique_ptr<ResourceApi> api_;
  xds::SnapshotCache cache_;
  xds::AgentRegistry registry_;
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

}  // namespace
}  // namespace meshplug::control_plane::api
