// What the admin API does with resources, independent of gRPC: validated, all-or-nothing
// applies and deletes, and reads with store-owned metadata filled in.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "resources/manifest.h"
#include "control_plane/api/service_addresses.h"
#include "control_plane/api/status_view.h"
#include "control_plane/store/store.h"
#include "meshplug/v1/admin.pb.h"

namespace meshplug::control_plane::api {

class ResourceApi {
 public:
  // `status` (may be null) fills in the status of objects read, from the control plane's
  // live state.
  // `addresses`: where Services' virtual addresses come from.
  explicit ResourceApi(store::Store& store, const StatusView* status = nullptr,
                       ServiceAddresses addresses = ServiceAddresses::Default())
      : store_(store), status_(status), addresses_(std::move(addresses)) {}

  // Parses and validates every document of every manifest first; writes all of them in
  // one store commit, or nothing. Unchanged objects are reported and not rewritten.
  absl::StatusOr<v1::ApplyResponse> Apply(const v1::ApplyRequest& req);

  // Deletes what the refs and the manifests' documents name, all or nothing. Deleting a
  // Namespace deletes the objects in it.
  absl::StatusOr<v1::DeleteResponse> Delete(const v1::DeleteRequest& req);

  // One object (req.name set) or a list, as typed messages packed in Any.
  absl::StatusOr<v1::GetResponse> Get(const v1::GetRequest& req);

  // A stored entry as its typed message, with resourceVersion set and status filled in.
  absl::StatusOr<std::unique_ptr<resources::Object>> Decode(const store::Entry& entry) const;

 private:
  absl::StatusOr<std::vector<resources::Document>> ParseAll(
      const google::protobuf::RepeatedPtrField<v1::Manifest>& manifests) const;

  store::Store& store_;
  const StatusView* status_;
  const ServiceAddresses addresses_;
  // One apply at a time: a Service's address is chosen from what is stored.
  std::mutex apply_mu_;
};

}  // namespace meshplug::control_plane::api
