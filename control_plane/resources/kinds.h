// The resource kinds meshplug knows: names users type, apiVersions, scope, and the typed
// message each is stored as. Shared by the control plane and meshctl.
#pragma once

#include <google/protobuf/message.h>

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace meshplug::resources {

enum class Scope { kCluster, kNamespaced };

struct KindInfo {
  std::string kind;                       // "PluginChain"
  std::vector<std::string> api_versions;  // accepted; the first is written back
  Scope scope;
  std::vector<std::string> aliases;  // lower-case plural and short names ("pluginchains", "pichn")
  const google::protobuf::Message* prototype;  // default instance of the typed message

  std::unique_ptr<google::protobuf::Message> New() const {
    return std::unique_ptr<google::protobuf::Message>(prototype->New());
  }
  bool namespaced() const { return scope == Scope::kNamespaced; }
};

std::span<const KindInfo> AllKinds();

// By exact kind name ("Plugin").
const KindInfo* FindKind(std::string_view kind);

// By what a user types: the kind, its plural or short name, in any case ("pi", "Plugins").
const KindInfo* ResolveKind(std::string_view typed);

// By the typed message's full name ("meshplug.v1.Plugin"), e.g. to read an Any.
const KindInfo* FindKindByMessage(std::string_view full_name);

// "Plugin, PluginChain, ..." for error messages.
std::string KindNames();

}  // namespace meshplug::resources
