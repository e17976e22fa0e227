// token-injector and token-verifier against a real auth service on loopback.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fstream>
#include <sstream>

#include "plugins/lua/testing.h"

namespace meshplug::plugins::lua {
namespace {

namespace asio = boost::asio;
using testing::ClosedLoopbackAddress;
using testing::JsonConfigs;
using testing::LogCapture;
using testing::LoopbackServer;
using testing::MakeRequest;
using testing::RunRequest;
using Reply = http::response<http::string_body>;

constexpr char kToken[] = "2f1acc6c3a606b082e5eef5e54414ffb";
constexpr char kService[] = "httpbin.httpbin";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << "cannot open " << path;
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string Script(const std::string& name) {
  return ReadFile("plugins/examples/" + name + ".lua");
}

std::shared_ptr<LuaPlugin> Load(const std::string& name, LogCapture& logs) {
  LuaPluginOptions options;
  options.log = logs.sink();
  return testing::MustLoad(name, Script(name), options);
}

class Manifest : public ::testing::TestWithParam<const char*> {};

TEST_P(Manifest, MatchesScriptAndLoads) {
  const std::string name = GetParam();
  const YAML::Node manifest = YAML::LoadFile("plugins/examples/" + name + ".yaml");
  EXPECT_EQ(manifest["apiVersion"].as<std::string>(), "plugin.flomesh.io/v1alpha1");
  EXPECT_EQ(manifest["kind"].as<std::string>(), "Plugin");
  EXPECT_EQ(manifest["metadata"]["name"].as<std::string>(), name);
  EXPECT_EQ(manifest["spec"]["priority"].as<int>(), 115);
  const std::string script = manifest["spec"]["script"].as<std::string>();
  EXPECT_EQ(script, Script(name));
  EXPECT_TRUE(LuaPlugin::Create(name, "v1", script).ok());
}

INSTANTIATE_TEST_SUITE_P(Examples, Manifest, ::testing::Values("token-injector", "token-verifier"),
                         [](const auto& info) {
                           return std::string(info.param) == "token-injector" ? "Injector"
                                                                              : "Verifier";
                         });

TEST(TokenInjector, WithoutConfigLeavesRequestAlone) {
  LogCapture logs;
  auto injector = Load("token-injector", logs);
  ASSERT_TRUE(injector);
  asio::io_context io;
  HttpContext ctx = MakeRequest(http::verb::get, "/get", kService);
  EXPECT_EQ(RunRequest(io, *injector, ctx).kind, Verdict::Kind::kContinue);
  EXPECT_EQ(ctx.request.count("x-iam-token"), 0u);
}

TEST(TokenInjector, SetsTokenFromConfig) {
  LogCapture logs;
  auto injector = Load("token-injector", logs);
  ASSERT_TRUE(injector);
  JsonConfigs configs;
  configs.Set(kService, "token-injector", std::string(R"({"AccessToken": ")") + kToken + "\"}");
  asio::io_context io;
  HttpContext ctx = MakeRequest(http::verb::get, "/get", kService);
  ctx.request.set("x-iam-token", "stale");
  ctx.configs = &configs;
  EXPECT_EQ(RunRequest(io, *injector, ctx).kind, Verdict::Kind::kContinue);
  EXPECT_EQ(ctx.request["x-iam-token"], kToken);
}

// The reference scenario's auth service: 200 when x-iam-token is right, else 401. It can
// also hold its answers back, to look slow.
struct TokenVerifier : ::testing::Test {
  TokenVerifier()
      : auth(io, [this](const http::request<http::string_body>& req) -> asio::awaitable<Reply> {
          seen_method = std::string(req.method_string());
          seen_path = std::string(req.target());
          seen_host = std::string(req[http::field::host]);
          if (slow) {
            asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::seconds(30));
            co_await timer.async_wait(asio::use_awaitable);
          }
          const bool ok = req["x-iam-token"] == kToken;
          Reply reply(ok ? http::status::ok : http::status::unauthorized, 11);
          reply.set(http::field::content_type, "text/plain");
          reply.body() = ok ? "" : "Unauthorized!";
          co_return reply;
        }) {
    verifier = Load("token-verifier", logs);
  }

  void Configure(const std::string& verifier_address, const std::string& extra = "") {
    configs.Set(kService, "token-verifier",
                R"({"Verifier": ")" + verifier_address + R"(", "Paths": ["/get", "/api/*"])" +
                    extra + "}");
  }

  Verdict Send(const std::string& path, const std::string& token) {
    HttpContext ctx = MakeRequest(http::verb::get, path, kService);
    ctx.configs = &configs;
    if (!token.empty()) ctx.request.set("x-iam-token", token);
    return RunRequest(io, *verifier, ctx);
  }

  asio::io_context io;
  bool slow = false;
  std::string seen_method, seen_path, seen_host;
  LoopbackServer auth;
  LogCapture logs;
  JsonConfigs configs;
  std::shared_ptr<LuaPlugin> verifier;
};

TEST_F(TokenVerifier, NoConfigPasses) {
  ASSERT_TRUE(verifier);
  EXPECT_EQ(Send("/get", "").kind, Verdict::Kind::kContinue);
  EXPECT_EQ(auth.requests(), 0);
}

TEST_F(TokenVerifier, ValidTokenPasses) {
  ASSERT_TRUE(verifier);
  Configure(auth.address());
  EXPECT_EQ(Send("/get?show_env=1", kToken).kind, Verdict::Kind::kContinue);
  EXPECT_EQ(auth.requests(), 1);
  EXPECT_EQ(seen_method, "GET");
  EXPECT_EQ(seen_path, "/get?show_env=1");
}

TEST_F(TokenVerifier, WrongTokenGetsTheAuthServiceAnswer) {
  ASSERT_TRUE(verifier);
  Configure(auth.address());
  const Verdict verdict = Send("/get", "wrong");
  ASSERT_EQ(verdict.kind, Verdict::Kind::kRespond);
  EXPECT_EQ(verdict.response.status, 401u);
  EXPECT_EQ(verdict.response.body, "Unauthorized!");
  const Verdict missing = Send("/api/items", "");
  EXPECT_EQ(missing.response.status, 401u);
  EXPECT_EQ(verifier->stats().counters().at("denied"), 2);
}

// The scenario's Verifier is a mesh name ("ext-auth.auth:8079"): the chain set's resolver
// sends the call to the service's endpoint, keeping the name in the Host header.
struct FixedResolver : ServiceResolver {
  std::string name;
  UpstreamTarget target;
  std::optional<UpstreamTarget> Resolve(std::string_view host_port) const override {
    return host_port == name ? std::optional<UpstreamTarget>(target) : std::nullopt;
  }
};

TEST_F(TokenVerifier, MeshServiceNamesResolveThroughTheChainSet) {
  ASSERT_TRUE(verifier);
  Configure("ext-auth.auth:8079");
  const std::string address = auth.address();
  FixedResolver resolver;
  resolver.name = "ext-auth.auth:8079";
  resolver.target.cluster = "ext-auth.auth|8079";
  resolver.target.host = address.substr(0, address.rfind(':'));
  resolver.target.port = static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
  HttpContext ctx = MakeRequest(http::verb::get, "/get", kService);
  ctx.configs = &configs;
  ctx.resolver = &resolver;
  ctx.request.set("x-iam-token", kToken);
  EXPECT_EQ(RunRequest(io, *verifier, ctx).kind, Verdict::Kind::kContinue);
  EXPECT_EQ(auth.requests(), 1);
  EXPECT_EQ(seen_host, "ext-auth.auth:8079");
}

TEST_F(TokenVerifier, OtherPathsAreNotChecked) {
  ASSERT_TRUE(verifier);
  Configure(auth.address());
  EXPECT_EQ(Send("/headers", "").kind, Verdict::Kind::kContinue);
  EXPECT_EQ(Send("/getx", "").kind, Verdict::Kind::kContinue);
  EXPECT_EQ(auth.requests(), 0);
}

TEST_F(TokenVerifier, AuthDownFailsClosed) {
  ASSERT_TRUE(verifier);
  Configure(ClosedLoopbackAddress());
  const Verdict verdict = Send("/get", kToken);
  ASSERT_EQ(verdict.kind, Verdict::Kind::kRespond);
  EXPECT_EQ(verdict.response.status, 503u);
  EXPECT_TRUE(logs.Contains("warn token-verifier: auth service 127.0.0.1:"))
      << ::testing::PrintToString(logs.lines());
  EXPECT_EQ(verifier->stats().errors(), 0u);  // a handled failure, not a script error
}

TEST_F(TokenVerifier, AuthSlowerThanTimeoutFailsClosed) {
  ASSERT_TRUE(verifier);
  slow = true;
  Configure(auth.address(), R"(, "Timeout": 0.2)");
  const auto start = std::chrono::steady_clock::now();
  const Verdict verdict = Send("/get", kToken);
  EXPECT_EQ(verdict.response.status, 503u);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_TRUE(logs.Contains("timed out after 200 ms")) << ::testing::PrintToString(logs.lines());
}

TEST_F(TokenVerifier, FailOpenLetsRequestsThrough) {
  ASSERT_TRUE(verifier);
  Configure(ClosedLoopbackAddress(), R"(, "FailOpen": true)");
  EXPECT_EQ(Send("/get", "").kind, Verdict::Kind::kContinue);
  slow = true;
  Configure(auth.address(), R"(, "FailOpen": true, "Timeout": 0.1)");
  EXPECT_EQ(Send("/get", "").kind, Verdict::Kind::kContinue);
  EXPECT_EQ(verifier->stats().counters().at("verifier_errors"), 2);
}

TEST_F(TokenVerifier, InjectorThenVerifier) {
  ASSERT_TRUE(verifier);
  auto injector = Load("token-injector", logs);
  ASSERT_TRUE(injector);
  Configure(auth.address());
  configs.Set(kService, "token-injector", std::string(R"({"AccessToken": ")") + kToken + "\"}");
  HttpContext ctx = MakeRequest(http::verb::get, "/get", kService);
  ctx.configs = &configs;
  EXPECT_EQ(RunRequest(io, *injector, ctx).kind, Verdict::Kind::kContinue);
  EXPECT_EQ(RunRequest(io, *verifier, ctx).kind, Verdict::Kind::kContinue);
  EXPECT_EQ(auth.requests(), 1);
}

}  // namespace
}  // namespace meshplug::plugins::lua
