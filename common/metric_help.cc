#include "common/metric_help.h"

#include <algorithm>
#include <iterator>
#include <utility>

namespace meshplug {
namespace {

// Sorted by name: MetricHelp binary-searches it.
constexpr std::pair<std::string_view, std::string_view> kHelp[] = {
    {"meshplug_agent_certificate_expiry_seconds", "Seconds until the workload certificate expires."},
    {"meshplug_agent_certificate_requests_total", "Workload certificate requests to the control plane, by kind and result."},
    {"meshplug_agent_chain_sets_live", "Chain sets alive: the active one and older ones still serving requests."},
    {"meshplug_agent_chain_swaps", "Chain sets activated since the agent started."},
    {"meshplug_agent_connections_active", "Connections open on a listener."},
    {"meshplug_agent_connections_refused_total", "Connections a listener refused, by reason."},
    {"meshplug_agent_connections_rejected_total", "Connections closed at accept because the listener was at its limit."},
    {"meshplug_agent_dns_queries_total", "DNS queries the agent answered, by result."},
    {"meshplug_agent_snapshot_from_cache", "1 while the running configuration came from the snapshot cache, not the control plane."},
    {"meshplug_agent_snapshot_info", "1 for the configuration version the agent runs."},
    {"meshplug_agent_tap_summaries_dropped", "Tap summaries left out by a tap's rate cap or full queue since the agent started."},
    {"meshplug_agent_taps_active", "Open /tap streams (meshctl tap) on this agent."},
    {"meshplug_agent_tcp_tunnels_total", "mTLS tunnels between agents, by direction and result."},
    {"meshplug_agent_tls_handshakes_total", "TLS handshakes, by direction and result."},
    {"meshplug_agent_xds_acks_total", "xDS responses the agent accepted, by type."},
    {"meshplug_agent_xds_connected", "1 while the agent's xDS stream is connected."},
    {"meshplug_agent_xds_connection_state", "1 for the xDS connection's current state."},
    {"meshplug_agent_xds_nacks_total", "xDS responses the agent refused, by type."},
    {"meshplug_agent_xds_responses_total", "xDS responses received, by type."},
    {"meshplug_agent_xds_stream_ends_total", "xDS streams that ended."},
    {"meshplug_agent_xds_streams_total", "xDS streams opened, by protocol."},
    {"meshplug_agent_xds_update_seconds", "Seconds from an xDS response to its chain set being active."},
    {"meshplug_agent_xds_updates_applied_total", "Configurations applied, from the control plane or the snapshot cache."},
    {"meshplug_circuit_breaker_rejected_total", "Requests a circuit breaker refused, by cluster."},
    {"meshplug_cp_agents_connected", "Agents and xDS clients with an open stream to this control-plane replica."},
    {"meshplug_cp_xds_acks_total", "xDS responses that clients accepted, by type."},
    {"meshplug_cp_xds_nacks_total", "xDS responses that clients refused, by type."},
    {"meshplug_cp_xds_responses_total", "xDS responses sent, by type."},
    {"meshplug_cp_xds_streams_total", "xDS streams opened, by protocol."},
    {"meshplug_grpc_responses_total", "gRPC responses through the agent, by direction, source, destination, route and grpc-status."},
    {"meshplug_http2_refused_streams_total", "HTTP/2 streams refused because the connection was at its stream limit."},
    {"meshplug_http_internal_errors_total", "Requests that failed inside the agent (not in a plugin)."},
    {"meshplug_http_rate_limited_total", "Requests a rate limit refused."},
    {"meshplug_http_request_bytes_total", "Request body bytes sent to upstreams, by direction, source, destination and route."},
    {"meshplug_http_request_duration_seconds",
     "Seconds from a request's arrival to its last response byte, by direction, source, destination and route."},
    {"meshplug_http_requests_total",
     "HTTP requests finished, by direction, source and destination workload, route and status code."},
    {"meshplug_http_response_bytes_total", "Response body bytes sent to clients, by direction, source, destination and route."},
    {"meshplug_http_upgrades_total", "Connections switched to another protocol (WebSocket), by cluster."},
    {"meshplug_lua_memory_bytes", "Bytes allocated by every Lua state of the agent."},
    {"meshplug_plugin_duration_seconds", "Seconds a plugin's request and response steps took per request, by chain and plugin (only for the steps a plugin has)."},
    {"meshplug_plugin_errors_total", "Plugin steps that raised an error, by plugin."},
    {"meshplug_plugin_responses_total", "Requests a plugin answered itself, by chain, plugin and status code."},
    {"meshplug_plugin_tally", "Each counter(name) a plugin script keeps: the sum of what it added."},
    {"meshplug_stats_series_dropped_total", "Label sets not recorded because their metric reached its series limit."},
    {"meshplug_tcp_connections_total", "TCP connections through a tcp chain, by direction, source and destination."},
    {"meshplug_tcp_idle_timeouts_total", "TCP relays closed by the idle or half-close timeout, by cluster."},
    {"meshplug_tcp_received_bytes_total", "Bytes relayed from the downstream to the upstream, by direction, source and destination."},
    {"meshplug_tcp_sent_bytes_total", "Bytes relayed from the upstream to the downstream, by direction, source and destination."},
    {"meshplug_upstream_connect_failures_total", "Connections to an upstream that failed, by cluster."},
    {"meshplug_upstream_refused_stream_retries_total", "Requests retried because the upstream refused an HTTP/2 stream."},
    {"meshplug_upstream_retries_total", "Requests retried, by cluster."},
    {"meshplug_upstream_stale_connection_retries_total", "Requests resent on a new connection after a kept-alive one had closed (or answered 408 as it closed)."},
    {"meshplug_upstream_timeouts_total", "Requests whose upstream did not answer within the timeout, by cluster."},
};

static_assert(std::is_sorted(std::begin(kHelp), std::end(kHelp),
                             [](const auto& a, const auto& b) { return a.first < b.first; }),
              "kHelp must stay sorted by name");

}  // namespace

std::string_view MetricHelp(std::string_view name) {
  auto it = std::lower_bound(std::begin(kHelp), std::end(kHelp), name,
                             [](const auto& entry, std::string_view n) { return entry.first < n; });
  return it != std::end(kHelp) && it->first == name ? it->second : std::string_view();
}


}  // namespace meshplug
