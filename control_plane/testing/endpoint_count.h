// Tests' view of an agent's published endpoints.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <string>
#include <string_view>

#include "common/xds_types.h"
#include "control_plane/xds/resources.h"

namespace meshplug::control_plane::testing {

// The endpoints of `cluster` that `agent`'s resources hold (over all its pages).
inline size_t EndpointCount(const xds::AgentResources& agent, std::string_view cluster) {
  size_t n = 0;
  agent.ForEach(xds_types::UrlOf<v1::Endpoints>(), [&](const std::string&, const xds::ResourcePtr& r) {
    v1::Endpoints e;
    EXPECT_TRUE(e.ParseFromString(std::string(r->Value())));
    if (e.cluster() == cluster) n += static_cast<size_t>(e.endpoints_size());
  });
  return n;
}

}  // namespace meshplug::control_plane::testing
