// What the control plane knows of every agent's streams: connected or not, the version
// of each type sent and ACKed, the last NACK. `meshctl proxy status` prints it.
#pragma once

#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/stats.h"
#include "control_plane/xds/node_authorizer.h"
#include "meshplug/v1/admin.pb.h"

namespace meshplug::control_plane::xds {

// How a client with an xDS token (not the workload's agent) is listed: "<agent>#xds".
inline constexpr std::string_view kXdsClientSuffix = "#xds";
inline std::string XdsClientKey(const std::string& agent) { return agent + std::string(kXdsClientSuffix); }

class AgentRegistry {
 public:
  static constexpr size_t kMaxNackBytes = 1024;

  // `stats` (optional) counts streams, responses, ACKs and NACKs by type.
  explicit AgentRegistry(Stats* stats = nullptr) : stats_(stats) {}

  // Returns a stream id; an agent may reconnect before its old stream is reaped.
  // `admin_address`: where the agent serves /stats, as it reported it ("" for none).
  uint64_t Connected(const std::string& agent, const std::string& protocol, const std::string& peer,
                     const AgentIdentity& identity = {}, const std::string& admin_address = "");
  // True when it was the agent's last stream.
  bool Disconnected(const std::string& agent, uint64_t stream);
  // A known agent renewed its certificate: proxy status shows the new one.
  void CertificateIssued(const std::string& agent, const AgentIdentity& identity);
  void Sent(const std::string& agent, const std::string& type_url, const std::string& version);
  void Acked(const std::string& agent, const std::string& type_url, const std::string& version);
  // The agent resumed holding `version` of the type (nothing needed sending): in sync.
  void Resumed(const std::string& agent, const std::string& type_url, const std::string& version);
  // Keeps at most kMaxNackBytes of the agent's error text.
  void Nacked(const std::string& agent, const std::string& type_url, std::string_view error);
  void SetSnapshotVersion(const std::string& agent, const std::string& version);
  // Forgets it unless a stream of it is open (checked and done at once); true when one is.
  bool ForgetIfDisconnected(const std::string& agent);

  std::vector<v1::AgentStatus> List() const;
  // What changed since the last call: the agents whose status changed, and those forgotten.
  struct Changes {
    std::vector<v1::AgentStatus> changed;
    std::vector<std::string> forgotten;
  };
  Changes TakeChanges();
  bool IsConnected(const std::string& agent) const;
  // The agents with an open stream to this process (xDS clients too, by XdsClientKey).
  std::set<std::string> ConnectedAgents() const;
  // Agents and clients with an open stream to this process.
  size_t ConnectedCount() const;
  int64_t Responses(const std::string& agent) const;

 private:
  struct Entry {
    v1::AgentStatus status;
    std::map<std::string, v1::TypeStatus> types;
    std::map<uint64_t, bool> streams;
  };
  Entry& At(const std::string& agent);  // marks it changed
  // The status of one type in `entry`, named when it is made.
  static v1::TypeStatus& TypeAt(Entry& entry, const std::string& type_url);
  static void SetIdentity(Entry& e, const AgentIdentity& identity);
  static v1::AgentStatus StatusOf(const Entry& e);
  void Count(std::string_view metric, const std::string& type_url);

  Stats* const stats_;
  mutable std::mutex mu_;
  uint64_t next_stream_ = 1;
  std::map<std::string, Entry> agents_;
  std::set<std::string> changed_;
};

}  // namespace meshplug::control_plane::xds
