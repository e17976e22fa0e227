// Test helpers: build LuaPlugins, contexts and configs, capture logs, run steps.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it

#include <gtest/gtest.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "plugins/http_client/testing.h"
#include "plugins/lua/lua_plugin.h"

namespace meshplug::plugins::lua::testing {

using plugins::http_client::testing::ClosedLoopbackAddress;
using plugins::http_client::testing::LoopbackServer;
using plugins::http_client::testing::RunFor;

// PluginConfigs from JSON text, keyed by service and plugin.
class JsonConfigs : public PluginConfigs {
 public:
  void Set(const std::string& service, const std::string& plugin, const std::string& json) {
    google::protobuf::Struct config;
    const auto status = google::protobuf::util::JsonStringToMessage(json, &config);
    EXPECT_TRUE(status.ok()) << json;
    configs_[{service, plugin}] = std::move(config);
  }
  const google::protobuf::Struct* Find(std::string_view service,
                                       std::string_view plugin) const override {
    const auto found = configs_.find({std::string(service), std::string(plugin)});
    return found == configs_.end() ? nullptr : &found->second;
  }

 private:
  std::map<std::pair<std::string, std::string>, google::protobuf::Struct> configs_;
};

// Keeps every log line as "level plugin: message".
class LogCapture {
 public:
  LogSink sink() {
    return [lines = lines_](LogLevel level, std::string_view plugin, std::string_view message) {
      lines->push_back(std::string(log::LevelName(level)) + " " + std::string(plugin) + ": " +
                       std::string(message));
    };
  }
  const std::vector<std::string>& lines() const { return *lines_; }
  bool Contains(std::string_view text) const {
    for (const auto& line : *lines_) {
      if (line.find(text) != std::string::npos) return true;
    }
    return false;
  }

 private:
  std::shared_ptr<std::vector<std::string>> lines_ = std::make_shared<std::vector<std::string>>();
};

// A plugin that must load; fails the test (and returns null) otherwise.
inline std::shared_ptr<LuaPlugin> MustLoad(const std::string& name, const std::string& script,
                                           LuaPluginOptions options = {}) {
  auto plugin = LuaPlugin::Create(name, "v1", script, std::move(options));
  EXPECT_TRUE(plugin.ok()) << plugin.status();
  return plugin.ok() ? *plugin : nullptr;
}

inline HttpContext MakeRequest(http::verb method, const std::string& path,
                               const std::string& service = "httpbin.httpbin") {
  HttpContext ctx;
  ctx.request.method(method);
  ctx.request.target(path);
  ctx.request.version(11);
  ctx.service = service;
  return ctx;
}

// Runs one request step of `plugin` on `io` to its end (bounded).
inline Verdict RunRequest(boost::asio::io_context& io, HttpPlugin& plugin, HttpContext& ctx) {
  auto verdict = RunFor(io, plugin.OnRequestHeaders(ctx));
  EXPECT_TRUE(verdict.has_value()) << "step did not finish";
  return verdict.value_or(Verdict::Respond(599, "step did not finish"));
}

}  // namespace meshplug::plugins::lua::testing
