// Virtual IPv4 addresses of Services, like Kubernetes' ClusterIP: one per Service from the
// control plane's range, assigned when the Service is created and kept while it exists, so
// an intercepted connection to it can be told by its destination address.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "control_plane/store/store.h"
#include "resources/manifest.h"

namespace meshplug::control_plane::api {

// Addresses claimed for the Services of one apply, released when it is over (committed:
// the stored Services hold them; failed: they are free again).
class AddressClaims {
 public:
  explicit AddressClaims(store::Store& store) : store_(&store) {}
  AddressClaims(AddressClaims&& other) noexcept : store_(other.store_), names_(std::move(other.names_)) { other.names_.clear(); }
  AddressClaims& operator=(AddressClaims&&) = delete;
  ~AddressClaims();
  void Add(std::string name) { names_.push_back(std::move(name)); }

 private:
  store::Store* store_;
  std::vector<std::string> names_;
};

class ServiceAddresses {
 public:
  static constexpr const char* kDefaultCidr = "10.96.0.0/16";
  // "10.96.0.0/16": a network of at least 4 addresses (/30).
  static absl::StatusOr<ServiceAddresses> Parse(const std::string& cidr);
  static ServiceAddresses Default() { return *Parse(kDefaultCidr); }

  // Fills spec.clusterIP of every Service in `docs`: the stored Service's (it cannot
  // change), the one given (inside the range and not another Service's), or the next free
  // address after the one given last (wrapping round). New addresses are claimed in the
  // store until the returned claims are destroyed, after the commit: control planes
  // sharing the store (etcd replicas) then never give one address to two Services.
  absl::StatusOr<AddressClaims> Assign(store::Store& store, std::vector<resources::Document>& docs) const;


 private:
  ServiceAddresses(std::string cidr, uint32_t network, uint32_t size) : cidr_(std::move(cidr)), network_(network), size_(size) {}

  std::string cidr_;
  uint32_t network_ = 0;  // host order
  uint32_t size_ = 0;     // addresses in the range, network and broadcast included
};

}  // namespace meshplug::control_plane::api
