// The agent's xDS client: one Aggregated Discovery Service stream to the control plane,
// incremental (delta) by default or state of the world, on a dedicated thread that runs
// the stream's I/O on an Asio loop of its own, so the proxy's workers never wait on it.
//
// Its parts: GrpcCall (gRPC on the agent's HTTP/2 client), AdsStream (the stream's I/O),
// DeltaOps/SotwOps (protocol.h: the two
// variants' messages), UpdateAssembler (which responses make an update, and the ACKs and
// NACKs) and the saved-config file (saved_config.h). This class ties them together and
// owns reconnection, the saved configuration at start, status and metrics.
//
// The stream subscribes (wildcard) to the six meshplug resource types. A complete update
// goes to `apply` (the agent's atomic rebuild-and-swap); success ACKs every type it
// covers, failure NACKs them with the error in `error_detail` (code 3, INVALID_ARGUMENT)
// and the agent keeps serving its previous set.
//
// Resilience: on any stream end it reconnects after an exponential backoff with jitter,
// serving the last good set meanwhile. Every applied configuration is saved to
// `cache_path` atomically; at start, if the control plane cannot be reached (or sends no
// complete configuration within `initial_fetch_timeout`), the saved one is applied. A new
// stream resumes from what the agent runs: delta sends `initial_resource_versions`, state
// of the world the accepted `version_info` of each type, so only changes are sent.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <boost/asio/io_context.hpp>

#include "absl/status/status.h"
#include "agent/xds/control_plane_credentials.h"
#include "agent/xds/server_list.h"
#include "agent/xds/update_assembler.h"
#include "agent/xds/xds_resources.h"
#include "envoy/config/core/v3/base.pb.h"
#include "meshplug/v1/snapshot.pb.h"
#include "common/backoff.h"
#include "common/stats.h"

namespace meshplug::agent::xds {

class GrpcCall;

enum class XdsProtocol { kDelta, kSotw };

struct XdsClientOptions {
  // host:port of the control plane, or of its replicas: host:port,host:port,...
  std::string server_address;
  // The replica in use, shared with the agent's WorkloadIdentity so that certificates are
  // renewed where the agent's status is kept; unset: made from server_address.
  std::shared_ptr<ServerList> servers;
  // The credentials for one connection attempt (the agent's: mTLS with its workload
  // certificate, joining first if needed). An error fails that attempt, which is retried
  // after the backoff. Unset: plaintext, for tests of the protocol alone.
  std::function<absl::StatusOr<ControlPlaneCredentials>()> credentials;
  XdsProtocol protocol = XdsProtocol::kDelta;
  envoy::config::core::v3::Node node;
  // Where the last good configuration is saved; empty: not saved or loaded.
  std::string cache_path;
  // Apply the saved configuration when the control plane is unreachable at start (false
  // when the agent already runs a --snapshot_file).
  bool use_cache_at_start = true;
  // At start, how long to wait for a complete configuration before falling back to the
  // saved one even though the control plane may still answer.
  std::chrono::milliseconds initial_fetch_timeout{5000};
  // Reconnect delay: min(backoff_max, backoff_base × 2^attempt), jittered to 50–100 %.
  std::chrono::milliseconds backoff_base = kBackoffBase;
  std::chrono::milliseconds backoff_max = kBackoffMax;
  // How long one connection attempt may take to connect (TLS handshake included).
  std::chrono::milliseconds connect_timeout{5000};
  // When responses make an update, how long an update may wait for what it references.
  AssemblerTiming timing;
  // HTTP/2 keepalive ping interval on the stream (detects a control plane that vanished
  // without closing the connection). A gRPC server tolerates pings no more often than
  // every 5 minutes by default; meshplug's control plane allows every 10 s.
  std::chrono::milliseconds keepalive{330000};
};

enum class XdsConnectionState { kIdle, kConnecting, kConnected, kBackoff, kStopped };
const char* ToString(XdsConnectionState state);

// What the client has done; for /stats, logs and tests.
struct XdsClientStatus {
  XdsConnectionState state = XdsConnectionState::kIdle;
  std::string active_version;  // of the configuration applied through this client
  bool from_cache = false;     // the active configuration came from the saved snapshot
  uint64_t connects = 0;       // streams that reached the control plane
  uint64_t disconnects = 0;    // streams that ended
  uint64_t responses = 0;
  uint64_t applies = 0;  // configurations applied (swaps caused by xDS or the cache)
  uint64_t acks = 0;
  uint64_t nacks = 0;
  std::string last_error;  // the last NACK's message
  std::string last_stream_error;
  std::chrono::microseconds last_update_latency{0};  // first response received → swapped
};

class XdsClient {
 public:
  // Builds and swaps in a chain set; an error leaves the running one in place. The lines
  // returned with success name parts that failed and were isolated while the rest runs:
  // the update is ACKed but for the PluginScript type, which is NACKed with them.
  using ApplyFn = std::function<absl::StatusOr<std::vector<std::string>>(v1::Snapshot)>;

  // `stats` (may be null) receives the meshplug_agent_xds_* metrics.
  XdsClient(XdsClientOptions options, ApplyFn apply, Stats* stats);
  ~XdsClient();
  XdsClient(const XdsClient&) = delete;
  XdsClient& operator=(const XdsClient&) = delete;

  // Loads the saved configuration (if any) and starts the client thread.
  void Start();
  // Ends the stream and joins the thread; safe to call more than once.
  void Stop();

  XdsClientStatus status() const;
  // Blocks until `pred(status())` holds or `timeout` passes; returns the last result.
  bool WaitFor(const std::function<bool(const XdsClientStatus&)>& pred, std::chrono::milliseconds timeout) const;

 private:
  void Run();
  // One connection attempt: connect, stream until it ends. True when the stream was
  // healthy (got a response, or lived at least backoff_max), so the backoff restarts.
  bool Attempt();
  // Connects and starts `method`'s call on io_ (serving the saved snapshot meanwhile when
  // it is due); nullptr when that failed or the client is stopping.
  std::unique_ptr<GrpcCall> Connect(std::string_view method);
  template <typename Proto>
  bool RunStream();

  // Counts and records ACKs and NACKs before they are sent.
  void Count(const std::vector<Answer>& answers);
  // Applies an update through `apply_`; the result for the assembler.
  absl::StatusOr<std::vector<std::string>> ApplyUpdate(const Update& update, bool from_cache);
  // Applies the saved configuration when it is time to.
  void MaybeUseCache(Clock::time_point now, bool attempt_failed);
  std::optional<Clock::time_point> CacheDeadline() const;
  // Writes what runs to the saved-config file if it changed since the last write.
  void SaveIfPending();

  void SetState(XdsConnectionState state);
  void UpdateStatus(const std::function<void(XdsClientStatus&)>& change);
  bool stopping() const { return stopping_.load(); }

  const XdsClientOptions options_;
  const std::shared_ptr<ServerList> servers_ =
      options_.servers ? options_.servers : std::make_shared<ServerList>(options_.server_address);
  std::string server_;  // the replica of the current attempt (the client thread's)
  const ApplyFn apply_;
  Stats* const stats_;
  const std::string agent_id_;

  // Client thread state.
  UpdateAssembler assembler_;
  std::optional<ResourceSet> cache_;  // loaded at start, until used or superseded
  Clock::time_point started_at_;
  bool save_pending_ = false;  // what runs changed and is not on disk yet
  Backoff backoff_;

  std::atomic<bool> stopping_{false};
  std::thread thread_;
  mutable std::mutex mu_;  // guards status_, wakeups
  mutable std::condition_variable cv_;
  XdsClientStatus status_;
  // The streams' I/O, run by the client thread; Stop stops it. One for the client's life:
  // a DNS lookup of the control plane's name still running when an attempt ends is not
  // waited for (Asio's resolver thread is the loop's).
  boost::asio::io_context io_;
};

}  // namespace meshplug::agent::xds
