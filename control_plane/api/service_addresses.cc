#include "control_plane/api/service_addresses.h"

#include <arpa/inet.h>

#include <algorithm>
#include <ctime>
#include <map>
#include <optional>
#include <tuple>
#include <vector>

#include "common/strings.h"
#include "meshplug/v1/resources.pb.h"

namespace meshplug::control_plane::api {
namespace {

constexpr const char* kNextSecret = "service-address-next";

std::optional<uint32_t> ParseIpv4(const std::string& text) {
  in_addr a{};
  if (inet_pton(AF_INET, text.c_str(), &a) != 1) return std::nullopt;
  return ntohl(a.s_addr);
}

std::string FormatIpv4(uint32_t ip) {
  in_addr a{};
  a.s_addr = htonl(ip);
  char buf[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

// An address is claimed for its Service while an apply is under way: a concurrent apply
// on another replica, unaware of this one's uncommitted Services, passes over it. The
// expiry frees it if this control plane dies mid-apply.
absl::StatusOr<bool> Claim(store::Store& store, uint32_t ip, AddressClaims& claims) {
  if (!store.Shared()) return true;  // one control plane: its applies are serialized
  const std::string name = Cat("service-address-claim/", FormatIpv4(ip));
  auto created = store.CreateSecret(name, "", std::time(nullptr) + 60);
  if (created.ok() && *created) claims.Add(name);
  return created;
}

// Who holds which address in the store now: address → the Service's key, and (when
// `current` is given) each Service's address.
absl::StatusOr<std::map<uint32_t, std::string>> Holders(store::Store& store,
                                                        std::map<resources::Key, std::string>* current = nullptr) {
  auto stored = store.List(resources::Kind::kService, "");
  if (!stored.ok()) return stored.status();
  std::map<uint32_t, std::string> holders;
  for (const auto& e : *stored) {
    mesh::v1::Service svc;
    if (!svc.ParseFromString(e.value) || svc.spec().cluster_ip().empty()) continue;
    if (current) (*current)[e.key] = svc.spec().cluster_ip();
    if (auto ip = ParseIpv4(svc.spec().cluster_ip())) holders[*ip] = e.key.ToString();
  }
  return holders;
}

// An address given in this apply: where, the address, and the Service's key.
using Claimed = std::tuple<std::string, uint32_t, std::string>;

// Another replica's apply may have committed (and released its claim on) an address after
// this one listed the Services and before it claimed: look at what is stored now.
absl::StatusOr<AddressClaims> Verified(store::Store& store, AddressClaims claims, const std::vector<Claimed>& claimed) {
  if (!store.Shared() || claimed.empty()) return claims;
  auto holders = Holders(store);
  if (!holders.ok()) return holders.status();
  for (const auto& [where, ip, key] : claimed) {
    if (auto it = holders->find(ip); it != holders->end() && it->second != key) {
      return absl::FailedPreconditionError(Cat(where, ": spec.clusterIP: ", FormatIpv4(ip), " was just given to ",
                                               it->second, " by a concurrent apply; apply again"));
    }
  }
  return claims;
}

}  // namespace

absl::StatusOr<ServiceAddresses> ServiceAddresses::Parse(const std::string& cidr) {
  const size_t slash = cidr.find('/');
  const auto ip = ParseIpv4(cidr.substr(0, slash));
  unsigned prefix = 0;
  if (!ip || slash == std::string::npos || !ParseNumber(cidr.substr(slash + 1), prefix) || prefix < 8 || prefix > 30) {
    return absl::InvalidArgumentError(
        Cat("--service_cidr: \"", cidr, "\" is not an IPv4 network from /8 to /30 (e.g. 10.96.0.0/16)"));
  }
  const uint32_t size = 1u << (32 - prefix);
  // Loopback, link-local and multicast addresses never leave the workload the way a
  // Service's address must (to be intercepted).
  const uint32_t first = *ip >> 24;
  if (first == 127 || first >= 224 || (*ip >> 16) == 0xa9fe || first == 0) {
    return absl::InvalidArgumentError(
        Cat("--service_cidr: \"", cidr, "\" is a loopback, link-local, multicast or reserved range"));
  }
  if ((*ip & (size - 1)) != 0) {
    return absl::InvalidArgumentError(Cat("--service_cidr: \"", cidr, "\" has host bits set; the network is ",
                                          FormatIpv4(*ip & ~(size - 1)), "/", prefix));
  }
  return ServiceAddresses(cidr, *ip, size);
}

AddressClaims::~AddressClaims() {
  for (const auto& name : names_) store_->DeleteSecret(name).IgnoreError();
}

absl::StatusOr<AddressClaims> ServiceAddresses::Assign(store::Store& store, std::vector<resources::Document>& docs) const {
  AddressClaims claims(store);
  std::vector<Claimed> claimed;
  if (std::none_of(docs.begin(), docs.end(), [](const auto& d) { return d.kind->id == resources::Kind::kService; })) {
    return claims;
  }
  // Who holds which address now.
  std::map<resources::Key, std::string> current;
  auto holders = Holders(store, &current);
  if (!holders.ok()) return holders.status();
  std::map<uint32_t, std::string>& taken = *holders;
  // Given and kept addresses first, so that assigning one cannot take them.
  std::vector<std::pair<std::string, mesh::v1::Service*>> unassigned;  // (where, service)
  for (auto& d : docs) {
    if (d.kind->id != resources::Kind::kService) continue;
    auto& svc = static_cast<mesh::v1::Service&>(*d.object);
    const resources::Key key = d.key();
    const std::string& given = svc.spec().cluster_ip();
    if (auto it = current.find(key); it != current.end()) {
      if (!given.empty() && given != it->second) {
        return absl::InvalidArgumentError(Cat(d.Where(), ": spec.clusterIP: \"", given, "\" cannot replace \"", it->second,
                                              "\"; a Service keeps its address (delete and re-create it for another)"));
      }
      svc.mutable_spec()->set_cluster_ip(it->second);
      continue;
    }
    if (given.empty()) {
      unassigned.emplace_back(d.Where(), &svc);
      continue;
    }
    const auto ip = ParseIpv4(given);
    if (!ip || *ip <= network_ || *ip >= network_ + size_ - 1) {
      return absl::InvalidArgumentError(
          Cat(d.Where(), ": spec.clusterIP: \"", given, "\" is not a host address of --service_cidr ", cidr_));
    }
    if (auto [it, fresh] = taken.emplace(*ip, key.ToString()); !fresh) {
      return absl::InvalidArgumentError(Cat(d.Where(), ": spec.clusterIP: ", given, " is taken by ", it->second));
    }
    auto mine = Claim(store, *ip, claims);
    if (!mine.ok()) return mine.status();
    if (!*mine) {
      return absl::FailedPreconditionError(
          Cat(d.Where(), ": spec.clusterIP: ", given, " is being given to another Service by a concurrent apply"));
    }
    claimed.emplace_back(d.Where(), *ip, key.ToString());
  }
  if (unassigned.empty()) return Verified(store, std::move(claims), claimed);
  // The search starts after the address given last, so a deleted Service's address (still
  // in clients' DNS caches) goes to another only once the range has been gone through.
  const uint32_t first = network_ + 1, hosts = size_ - 2;
  uint32_t next = first;
  if (auto hint = store.GetSecret(kNextSecret); hint.ok() && hint->has_value()) {
    if (auto ip = ParseIpv4(**hint); ip && *ip >= first && *ip < first + hosts) next = *ip;
  }
  // The next host address, from the last back to the first.
  auto after = [&](uint32_t ip) { return ip + 1 < first + hosts ? ip + 1 : first; };
  for (auto& [where, svc] : unassigned) {
    uint32_t tried = 0;
    while (tried < hosts) {
      if (!taken.count(next)) {
        auto mine = Claim(store, next, claims);
        if (!mine.ok()) return mine.status();
        if (*mine) break;
      }
      next = after(next);
      ++tried;
    }
    if (tried == hosts) {
      return absl::ResourceExhaustedError(Cat(where, ": spec.clusterIP: no free address left in --service_cidr ", cidr_));
    }
    taken.emplace(next, "");
    svc->mutable_spec()->set_cluster_ip(FormatIpv4(next));
    claimed.emplace_back(where, next,
                         resources::Key{resources::Kind::kService, svc->metadata().namespace_(), svc->metadata().name()}.ToString());
  }
  // A hint only: an apply that then fails leaves a gap, never a duplicate.
  if (auto st = store.PutSecret(kNextSecret, FormatIpv4(after(next))); !st.ok()) return st;
  return Verified(store, std::move(claims), claimed);
}

}  // namespace meshplug::control_plane::api
