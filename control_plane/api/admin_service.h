// The admin gRPC API (meshplug.v1.Admin) on gRPC's callback API: no thread per call.
// Every call needs a credential: reads a read-only or admin token, changes (and config
// dumps, which hold PluginConfig secrets) an admin token.
#pragma once

#include <grpcpp/grpcpp.h>

#include "control_plane/api/resource_api.h"
#include "control_plane/security/access.h"
#include "control_plane/security/ca_rotation.h"
#include "control_plane/security/tokens.h"
#include "control_plane/store/store.h"
#include "control_plane/xds/config_watcher.h"
#include "control_plane/xds/shared_agent_status.h"
#include "meshplug/v1/admin.grpc.pb.h"

namespace meshplug::control_plane::api {

inline constexpr const char* kVersion = "0.1.0";

class AdminService final : public v1::Admin::CallbackService {
 public:
  AdminService(store::Store& store, ResourceApi& api, const xds::ConfigWatcher& configs,
               const xds::SharedAgentStatus& agents, const security::Access& access,
               const security::TokenIssuer& tokens, security::CaRotation& ca_rotation)
      : store_(store), api_(api), configs_(configs), agents_(agents), access_(access), tokens_(tokens),
        ca_rotation_(ca_rotation) {}

  // Where plaintext xDS is served (its listen address), for xDS tokens' bootstraps; set
  // before serving.
  void SetPlaintextXdsAddress(std::string address) { plaintext_xds_address_ = std::move(address); }

  grpc::ServerUnaryReactor* Apply(grpc::CallbackServerContext* ctx, const v1::ApplyRequest* req,
                                  v1::ApplyResponse* resp) override;
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* ctx, const v1::DeleteRequest* req,
                                   v1::DeleteResponse* resp) override;
  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* ctx, const v1::GetRequest* req,
                                v1::GetResponse* resp) override;
  grpc::ServerUnaryReactor* Version(grpc::CallbackServerContext* ctx, const v1::VersionRequest* req,
                                    v1::VersionResponse* resp) override;
  grpc::ServerUnaryReactor* ProxyStatus(grpc::CallbackServerContext* ctx,
                                        const v1::ProxyStatusRequest* req,
                                        v1::ProxyStatusResponse* resp) override;
  grpc::ServerUnaryReactor* ConfigDump(grpc::CallbackServerContext* ctx,
                                       const v1::ConfigDumpRequest* req,
                                       v1::ConfigDumpResponse* resp) override;
  grpc::ServerUnaryReactor* CreateToken(grpc::CallbackServerContext* ctx, const v1::CreateTokenRequest* req,
                                        v1::CreateTokenResponse* resp) override;
  grpc::ServerUnaryReactor* RotateCa(grpc::CallbackServerContext* ctx, const v1::RotateCaRequest* req,
                                     v1::CaStatus* resp) override;
  grpc::ServerWriteReactor<v1::WatchEvent>* Watch(grpc::CallbackServerContext* ctx,
                                                  const v1::WatchRequest* req) override;

 private:
  store::Store& store_;
  ResourceApi& api_;
  const xds::ConfigWatcher& configs_;
  const xds::SharedAgentStatus& agents_;  // every replica's agents
  const security::Access& access_;
  const security::TokenIssuer& tokens_;
  security::CaRotation& ca_rotation_;
  std::string plaintext_xds_address_;

  // An xDS token's client follows its Workload's configuration: one without an address
  // (never an endpoint) is created when none exists; an existing one is left as it is.
  absl::Status EnsureWorkload(const std::string& workload, const std::string& service_account);
};

}  // namespace meshplug::control_plane::api
