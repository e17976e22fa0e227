// Uniform access to the typed resource messages (each has apiVersion, kind, metadata).
#pragma once

#include <google/protobuf/message.h>

#include <memory>
#include <string>
#include <tuple>

#include "resources/kinds.h"
#include "meshplug/v1/resources.pb.h"

namespace meshplug::resources {

using Object = google::protobuf::Message;

struct Key {
  Kind kind;
  std::string ns;  // empty for cluster-scoped kinds
  std::string name;

  auto operator<=>(const Key&) const = default;
  // "Plugin token-verifier", "PluginChain curl/token-injector-chain"
  std::string ToString() const;
};

const meshplug::mesh::v1::ObjectMeta& Meta(const Object& obj);
meshplug::mesh::v1::ObjectMeta& MutableMeta(Object& obj);

Key KeyOf(const KindInfo& kind, const Object& obj);

// Sets apiVersion and kind from `kind` (the first, preferred apiVersion).
void SetTypeFields(const KindInfo& kind, Object& obj);

// The object without what the store and the control plane own (resourceVersion,
// creationTimestamp, generation, status): what a user's apply decides.
std::unique_ptr<Object> UserPart(const Object& obj);

}  // namespace meshplug::resources
