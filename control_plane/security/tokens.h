// Bearer tokens the control plane issues and checks: admin and read-only credentials for
// meshctl, and join tokens with which an agent gets its first certificate. A token is
// its claims and an HMAC-SHA256 over them with a key that only the store holds; it
// expires, and a join token is accepted once.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "control_plane/store/store.h"
#include "meshplug/v1/identity.pb.h"

namespace meshplug::control_plane::security {

// kJoin: one certificate for one workload. kXds: Envoy's resource types for one workload,
// for xDS clients that cannot present a certificate (gRPC's, over plaintext); reusable.
enum class Role { kAdmin, kReadOnly, kJoin, kXds };
const char* RoleName(Role role);
absl::StatusOr<Role> ParseRole(std::string_view name);

class TokenIssuer {
 public:
  using Clock = std::chrono::system_clock;

  // The signing key is made on first start and kept in the store.
  static absl::StatusOr<std::unique_ptr<TokenIssuer>> Open(store::Store& store);

  // A new token for `role` (with `subject` and `service_account` for a join token).
  std::string Issue(Role role, const std::string& subject, const std::string& service_account,
                    std::chrono::seconds ttl, v1::TokenClaims* claims = nullptr) const;

  // The claims of a token this control plane signed and that has not expired, or
  // UNAUTHENTICATED saying why not (never echoing the token).
  absl::StatusOr<v1::TokenClaims> Verify(std::string_view token, Clock::time_point now = Clock::now()) const;

  // Marks a verified join token as used: UNAUTHENTICATED if it already was.
  absl::Status Redeem(const v1::TokenClaims& claims);

 private:
  TokenIssuer(store::Store& store, std::string key) : store_(store), key_(std::move(key)) {}
  std::string Mac(std::string_view data) const;

  store::Store& store_;
  const std::string key_;
};

}  // namespace meshplug::control_plane::security
