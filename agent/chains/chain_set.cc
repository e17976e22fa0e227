#include "agent/chains/chain_set.h"

#include <type_traits>

#include "common/strings.h"

namespace meshplug::agent::chains {



std::atomic<int64_t> ChainSet::live_{0};

ChainSet::ChainSet(Parts parts) : parts_(std::move(parts)) {
  const v1::Workload& w = snapshot().settings().workload();
  workload_.name = w.name();
  workload_.ns = w.namespace_();
  workload_.service_account = w.service_account();
  workload_.labels.insert(w.labels().begin(), w.labels().end());
  live_.fetch_add(1);
}

ChainSet::~ChainSet() { live_.fetch_sub(1); }

ChainSetBuilder::ChainSetBuilder(const BuiltinFactory& builtins, const ScriptFactory* scripts,
                                 plugins::builtin::BuiltinState& state, proxy::Limits defaults)
    : builtins_(builtins), scripts_(scripts), state_(state), defaults_(defaults) {}

namespace {

// Where a script plugin that did not load (and has no previous version) stands: every
// request of its chain is answered 503, every connection closed, so what the plugin
// guards is not let through unguarded.
class UnavailablePlugin final : public plugins::HttpPlugin, public plugins::TcpPlugin {
 public:
  explicit UnavailablePlugin(std::string name) : name_(std::move(name)) {}
  const std::string& name() const override { return name_; }
  plugins::awaitable<plugins::Verdict> OnRequestHeaders(plugins::HttpContext&) override {
    co_return plugins::Verdict::Respond(503, Cat("plugin ", name_, " is not available\n"));
  }
  bool has_response_header_step() const override { return false; }
  plugins::awaitable<plugins::Verdict> OnConnect(plugins::TcpContext&) override {
    co_return plugins::Verdict::Respond(0);
  }

 private:
  std::string name_;
};

// The version of module `name` that `previous`'s chain runs, if it runs one (a stand-in
// is none).
template <typename Plugin>
std::shared_ptr<Plugin> PreviousInstance(const ChainSet* previous, const ChainInfo& chain, const std::string& name) {
  if (previous == nullptr) return nullptr;
  auto running = [&](const std::shared_ptr<Plugin>& plugin) {
    return dynamic_cast<UnavailablePlugin*>(plugin.get()) ? nullptr : plugin;
  };
  if constexpr (std::is_same_v<Plugin, plugins::HttpPlugin>) {
    for (const auto& entry : previous->http(chain.inbound)) {
      if (entry.name == name) return running(entry.plugin);
    }
  } else {
    for (const auto& entry : previous->tcp(chain.inbound)) {
      if (entry.name == name) return running(entry.plugin);
    }
  }
  return nullptr;
}

}  // namespace

template <typename Plugin>
absl::Status ChainSetBuilder::BuildChain(const google::protobuf::RepeatedPtrField<v1::ChainModule>& modules,
                                         const ChainInfo& chain, const plugins::builtin::BuiltinEnv& env,
                                         const ChainSet* previous, std::vector<ChainEntry<Plugin>>& out,
                                         std::vector<std::string>& isolated) const {
  constexpr bool kHttp = std::is_same_v<Plugin, plugins::HttpPlugin>;
  for (const v1::ChainModule& module : modules) {
    std::string where = Cat("chain ", chain.name, " module \"", module.name(), "\"");
    absl::StatusOr<std::shared_ptr<Plugin>> plugin;
    switch (module.source_case()) {
      case v1::ChainModule::kBuiltin:
        if constexpr (kHttp) {
          plugin = builtins_.MakeHttp(module.name(), env);
        } else {
          plugin = builtins_.MakeTcp(module.name(), env);
        }
        break;
      case v1::ChainModule::kScript: {
        const v1::PluginScript* script = nullptr;
        for (const v1::PluginScript& s : env.mesh->snapshot().scripts()) {
          if (s.name() == module.script()) script = &s;
        }
        if (script == nullptr) {
          return absl::InvalidArgumentError(
              Cat(where, ": no PluginScript \"", module.script(), "\" in the snapshot"));
        }
        if (scripts_ == nullptr) {
          return absl::FailedPreconditionError(
              Cat(where, ": script plugins are not available (no Lua runtime in this agent)"));
        }
        if constexpr (kHttp) {
          plugin = scripts_->MakeHttp(*script, env.inbound);
        } else {
          plugin = scripts_->MakeTcp(*script, env.inbound);
        }
        if (!plugin.ok()) {
          std::shared_ptr<Plugin> stand_in = PreviousInstance<Plugin>(previous, chain, module.name());
          isolated.push_back(Cat(where, " did not load: ", std::string(plugin.status().message()),
                                 stand_in ? "; its previous version keeps running"
                                          : "; the chain refuses requests until it loads"));
          if (!stand_in) stand_in = std::make_shared<UnavailablePlugin>(module.name());
          plugin = std::move(stand_in);
        }
        break;
      }
      case v1::ChainModule::SOURCE_NOT_SET:
        return absl::InvalidArgumentError(Cat(where, ": neither builtin nor script"));
    }
    if (!plugin.ok()) {
      return absl::Status(plugin.status().code(),
                          Cat(where, ": ", std::string(plugin.status().message())));
    }
    ChainEntry<Plugin> entry{module.name(), std::move(*plugin)};
    if constexpr (kHttp) {
      auto timing = [&](std::string_view step) {
        return &state_.stats.Histogram("meshplug_plugin_duration_seconds",
                                       {{"chain", chain.name}, {"plugin", module.name()}, {"step", step}});
      };
      entry.immediate = dynamic_cast<plugins::ImmediateHttpPlugin*>(entry.plugin.get());
      if (entry.plugin->has_request_header_step()) entry.request_time = timing("request");
      if (entry.plugin->has_response_header_step()) entry.response_time = timing("response");
      entry.body_steps = entry.plugin->request_body_mode() != plugins::BodyMode::kNone ||
                         entry.plugin->response_body_mode() != plugins::BodyMode::kNone;
    }
    out.push_back(std::move(entry));
  }
  return absl::OkStatus();
}

absl::StatusOr<BuiltChainSet> ChainSetBuilder::Build(v1::Snapshot snapshot, const ChainSet* previous) const {
  auto shared = std::make_shared<const v1::Snapshot>(std::move(snapshot));
  absl::StatusOr<std::shared_ptr<const routing::MeshView>> mesh = routing::MeshView::Build(shared);
  if (!mesh.ok()) return mesh.status();
  ChainSet::Parts parts;
  parts.mesh = *mesh;
  parts.limits = Resolve(defaults_, shared->settings().limits());
  const v1::ChainSet& chains = shared->chains();
  BuiltChainSet built;
  for (const ChainInfo& chain : Chains()) {
    const plugins::builtin::BuiltinEnv env{*mesh, chain.inbound, &state_};
    const auto& modules = ModulesOf(chains, chain);
    absl::Status s = chain.http ? BuildChain(modules, chain, env, previous, parts.http[chain.inbound], built.isolated)
                                : BuildChain(modules, chain, env, previous, parts.tcp[chain.inbound], built.isolated);
    if (!s.ok()) return s;
  }
  built.chains = std::make_shared<const ChainSet>(std::move(parts));
  return built;
}

}  // namespace meshplug::agent::chains
