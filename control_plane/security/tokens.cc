#include "control_plane/security/tokens.h"

#include <openssl/crypto.h>
#include <openssl/hmac.h>

#include "absl/strings/escaping.h"
#include "common/secret.h"
#include "common/strings.h"

namespace meshplug::control_plane::security {
namespace {

constexpr std::string_view kPrefix = "mpt1.";
constexpr const char* kKeySecret = "token-signing-key";
constexpr size_t kMaxTokenBytes = 4096;

int64_t Unix(TokenIssuer::Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

}  // namespace

const char* RoleName(Role role) {
  switch (role) {
    case Role::kAdmin: return "admin";
    case Role::kReadOnly: return "read-only";
    case Role::kJoin: return "join";
    case Role::kXds: return "xds";
  }
  return "";
}

absl::StatusOr<Role> ParseRole(std::string_view name) {
  for (Role r : {Role::kAdmin, Role::kReadOnly, Role::kJoin, Role::kXds}) {
    if (name == RoleName(r)) return r;
  }
  return absl::InvalidArgumentError(Cat("role \"", name, "\" is not one of admin, read-only, join, xds"));
}

absl::StatusOr<std::unique_ptr<TokenIssuer>> TokenIssuer::Open(store::Store& store) {
  auto created = store.CreateSecret(kKeySecret, SecretBytes(32), 0);
  if (!created.ok()) return created.status();
  auto key = store.GetSecret(kKeySecret);
  if (!key.ok()) return key.status();
  if (!key->has_value() || (*key)->size() != 32) return absl::DataLossError("the store's token signing key is damaged");
  return std::unique_ptr<TokenIssuer>(new TokenIssuer(store, **key));
}

std::string TokenIssuer::Mac(std::string_view data) const {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), out, &n);
  return std::string(reinterpret_cast<char*>(out), n);
}

std::string TokenIssuer::Issue(Role role, const std::string& subject, const std::string& service_account,
                               std::chrono::seconds ttl, v1::TokenClaims* claims_out) const {
  v1::TokenClaims claims;
  claims.set_id(absl::WebSafeBase64Escape(SecretBytes(16)));
  claims.set_role(RoleName(role));
  claims.set_subject(subject);
  claims.set_service_account(service_account);
  claims.set_expires_unix(Unix(Clock::now() + ttl));
  const std::string signed_part = Cat(kPrefix, absl::WebSafeBase64Escape(claims.SerializeAsString()));
  if (claims_out) *claims_out = claims;
  return Cat(signed_part, ".", absl::WebSafeBase64Escape(Mac(signed_part)));
}

absl::StatusOr<v1::TokenClaims> TokenIssuer::Verify(std::string_view token, Clock::time_point now) const {
  if (token.size() > kMaxTokenBytes || token.substr(0, kPrefix.size()) != kPrefix) {
    return absl::UnauthenticatedError("the credential is not a meshplug token");
  }
  const size_t dot = token.rfind('.');
  std::string mac;
  if (dot < kPrefix.size() || !absl::WebSafeBase64Unescape(std::string(token.substr(dot + 1)), &mac)) {
    return absl::UnauthenticatedError("the credential is not a meshplug token");
  }
  const std::string_view signed_part = token.substr(0, dot);
  const std::string expected = Mac(signed_part);
  if (mac.size() != expected.size() || CRYPTO_memcmp(mac.data(), expected.data(), mac.size()) != 0) {
    return absl::UnauthenticatedError("the token's signature does not verify: it was not issued by this mesh's control plane");
  }
  std::string payload;
  v1::TokenClaims claims;
  if (!absl::WebSafeBase64Unescape(std::string(signed_part.substr(kPrefix.size())), &payload) ||
      !claims.ParseFromString(payload) || !ParseRole(claims.role()).ok()) {
    return absl::UnauthenticatedError("the token's claims are damaged");
  }
  if (claims.expires_unix() <= Unix(now)) {
    return absl::UnauthenticatedError(Cat("the ", claims.role(), " token expired ", Unix(now) - claims.expires_unix(),
                                          " s ago; ask for a new one"));
  }
  return claims;
}

absl::Status TokenIssuer::Redeem(const v1::TokenClaims& claims) {
  auto fresh = store_.CreateSecret(Cat("used-join-token/", claims.id()), claims.subject(), claims.expires_unix());
  if (!fresh.ok()) return fresh.status();
  if (!*fresh) {
    return absl::UnauthenticatedError(Cat("the join token for ", claims.subject(),
                                          " was already used; a join token is good for one start (issue a new one "
                                          "with `meshctl workload token ", claims.subject(), "`)"));
  }
  return absl::OkStatus();
}

}  // namespace meshplug::control_plane::security
