// How meshctl prints resources: YAML and JSON with the manifests' field names, or a
// kubectl-like table.
#pragma once

#include <google/protobuf/message.h>

#include <memory>
#include <string>
#include <vector>

#include "common/traffic_stats.h"
#include "meshplug/v1/admin.pb.h"

namespace meshplug::cli {

using Objects = std::vector<std::unique_ptr<google::protobuf::Message>>;

// One object as itself, several as a "kind: List" with "items", like kubectl.
std::string ToYaml(const Objects& objects, bool as_list);
std::string ToJson(const Objects& objects, bool as_list);
// `show_namespace` adds a NAMESPACE column (for -A).
std::string ToTable(const Objects& objects, bool show_namespace);

// `meshctl proxy status`: one row per agent, with whether every type it was sent is ACKed
// and its last NACK.
std::string ProxyStatusTable(const v1::ProxyStatusResponse& resp);

// `meshctl ca status` and `ca rotate`: the phase, the CAs trusted, and the connected
// agents that have not moved to the signer yet.
std::string CaStatusText(const v1::CaStatus& status);

// "5s", "3m", "2h", "4d" since an RFC 3339 timestamp; "<unknown>" if unreadable.
std::string Age(const std::string& rfc3339);

// `meshctl stat`: one row per group; `window_seconds` 0: counts since the agents started
// (no RPS).
std::string StatTable(const std::vector<traffic::Row>& rows, traffic::GroupBy by, double window_seconds);

// Columns padded to the widest cell, three spaces apart, like kubectl; rows[0] is the header.
std::string RenderTable(const std::vector<std::vector<std::string>>& rows);

}  // namespace meshplug::cli
