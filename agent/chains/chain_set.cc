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

template <typename Plugin>
absl::Status ChainSetBuilder::BuildChain(
    const google::protobuf::RepeatedPtrField<v1::ChainModule>& modules, const ChainInfo& chain,
    const plugins::builtin::BuiltinEnv& env, std::vector<ChainEntry<Plugin>>& out) const {
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
        break;
      }
      case v1::ChainModule::SOURCE_NOT_SET:
        return absl::InvalidArgumentError(Cat(where, ": neither builtin nor script"));
    }
    if (!plugin.ok()) {
      return absl::Status(plugin.status().code(),
                          Cat(where, ": ", std::string(plugin.status().message())));
    }
    out.push_back({module.name(), std::move(*plugin)});
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const ChainSet>> ChainSetBuilder::Build(
    v1::Snapshot snapshot) const {
  auto shared = std::make_shared<const v1::Snapshot>(std::move(snapshot));
  absl::StatusOr<std::shared_ptr<const routing::MeshView>> mesh = routing::MeshView::Build(shared);
  if (!mesh.ok()) return mesh.status();
  ChainSet::Parts parts;
  parts.mesh = *mesh;
  parts.limits = Resolve(defaults_, shared->settings().limits());
  const v1::ChainSet& chains = shared->chains();
  for (const ChainInfo& chain : Chains()) {
    const plugins::builtin::BuiltinEnv env{*mesh, chain.inbound, &state_};
    const auto& modules = ModulesOf(chains, chain);
    absl::Status s = chain.http ? BuildChain(modules, chain, env, parts.http[chain.inbound])
                                : BuildChain(modules, chain, env, parts.tcp[chain.inbound]);
    if (!s.ok()) return s;
  }
  return std::make_shared<const ChainSet>(std::move(parts));
}

}  // namespace meshplug::agent::chains
