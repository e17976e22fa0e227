// Admin API requests as tests make them.
#pragma once

#include <string>

#include "meshplug/v1/admin.pb.h"

namespace meshplug::control_plane::testing {

inline v1::ApplyRequest ApplyRequestFor(const std::string& yaml) {
  v1::ApplyRequest req;
  req.add_manifests()->set_content(yaml);
  return req;
}

inline v1::DeleteRequest DeleteRequestFor(const std::string& kind, const std::string& ns, const std::string& name) {
  v1::DeleteRequest req;
  auto* ref = req.add_refs();
  ref->set_kind(kind);
  ref->set_namespace_(ns);
  ref->set_name(name);
  return req;
}

}  // namespace meshplug::control_plane::testing
