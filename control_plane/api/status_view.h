// Where the admin API gets the status it shows with stored objects (agents running a
// Plugin, PluginChain matches, PluginConfig conflicts, Workload connection): the
// controller implements it, so the API depends on this interface and not on the
// controller.
#pragma once

#include "resources/object.h"

namespace meshplug::control_plane::api {

class StatusView {
 public:
  virtual ~StatusView() = default;
  // Fills in `obj`'s status from the control plane's live state.
  virtual void FillStatus(resources::Object& obj) const = 0;
};

}  // namespace meshplug::control_plane::api
