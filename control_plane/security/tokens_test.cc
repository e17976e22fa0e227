#include "control_plane/security/tokens.h"

#include <gtest/gtest.h>


#include "control_plane/store/sqlite_store.h"
#include "control_plane/testing/fresh_store.h"

namespace meshplug::control_plane::security {
namespace {

TEST(TokenIssuerTest, ATokenItIssuedVerifiesWithItsClaims) {
  auto store = testing::FreshSqliteStore("tokens-ok");
  auto issuer = TokenIssuer::Open(*store);
  ASSERT_TRUE(issuer.ok()) << issuer.status();
  const std::string token = (*issuer)->Issue(Role::kJoin, "curl/curl", "curl", std::chrono::seconds(60));
  auto claims = (*issuer)->Verify(token);
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->role(), "join");
  EXPECT_EQ(claims->subject(), "curl/curl");
  EXPECT_EQ(claims->service_account(), "curl");
}

TEST(TokenIssuerTest, TheKeyOutlivesARestartAndAnotherMeshsTokensDoNotVerify) {
  auto store = testing::FreshSqliteStore("tokens-restart");
  const std::string token = (*TokenIssuer::Open(*store))->Issue(Role::kAdmin, "", "", std::chrono::seconds(60));
  EXPECT_TRUE((*TokenIssuer::Open(*store))->Verify(token).ok());
  auto other = testing::FreshSqliteStore("tokens-other");
  auto st = (*TokenIssuer::Open(*other))->Verify(token);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(st.status().message().find("signature does not verify"), std::string::npos);
}

TEST(TokenIssuerTest, ForgedClaimsExpiredAndGarbageAreRefused) {
  auto store = testing::FreshSqliteStore("tokens-forged");
  auto issuer = *TokenIssuer::Open(*store);
  const std::string join = issuer->Issue(Role::kJoin, "curl/curl", "curl", std::chrono::seconds(60));
  const std::string admin = issuer->Issue(Role::kAdmin, "", "", std::chrono::seconds(60));
  // Another token's claims with this one's signature.
  const std::string forged = admin.substr(0, admin.rfind('.')) + join.substr(join.rfind('.'));
  EXPECT_FALSE(issuer->Verify(forged).ok());
  auto expired = issuer->Verify(join, TokenIssuer::Clock::now() + std::chrono::seconds(61));
  ASSERT_FALSE(expired.ok());
  EXPECT_NE(expired.status().message().find("expired"), std::string::npos);
  for (const char* bad : {"", "mpt1.", "mpt1..", "Bearer x", "mpt1.!!!.???"}) {
    EXPECT_EQ(issuer->Verify(bad).status().code(), absl::StatusCode::kUnauthenticated) << bad;
  }
  EXPECT_FALSE(issuer->Verify(std::string(5000, 'a')).ok());
}

TEST(TokenIssuerTest, AJoinTokenIsRedeemedOnceEvenAcrossRestarts) {
  auto store = testing::FreshSqliteStore("tokens-redeem");
  auto issuer = *TokenIssuer::Open(*store);
  auto claims = *issuer->Verify(issuer->Issue(Role::kJoin, "curl/curl", "curl", std::chrono::seconds(60)));
  EXPECT_TRUE(issuer->Redeem(claims).ok());
  auto again = (*TokenIssuer::Open(*store))->Redeem(claims);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.message().find("already used"), std::string::npos);
}

}  // namespace
}  // namespace meshplug::control_plane::security
