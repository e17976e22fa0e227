// xDS load generator: N simulated agents, each a real ADS stream (state of the world or
// delta) with its own node identity, against a running control plane. It applies the
// mesh through the admin API, gives every agent its workload certificate the way a real
// agent joins (a join token, then Identity.Sign for a fresh key; not timed), connects the
// agents, then measures how long changes take to reach the last affected agent's ACK:
//   plugin-config  one PluginConfig change, mounted on 10% of the agents
//   plugin-script  one Plugin script change, mounted on every agent
//   new-service    one new Service (every agent gets it as a destination)
// Prints one JSON object on stdout (bench/xds_load/run.sh turns the runs into tables).
//
// Each agent has its own TLS connection: the control plane accepts an ADS stream only for
// the workload of the client certificate its connection presented, so connections cannot
// be shared between agents as they were over plaintext.
// A stream that fails (say, a connection that timed out before the server's SETTINGS in a
// storm) is opened again after the agent's jittered backoff; failed_streams counts them.
//
//   xds_load --config=$MESHPLUG_HOME/config --agents=1000 --protocol=delta --cp_pid=PID
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/statusor.h"
#include "common/backoff.h"
#include "common/client_config.h"
#include "common/deadlock_detection.h"
#include "resources/egress_hosts.h"
#include "common/strings.h"
#include "common/x509.h"
#include "common/xds_types.h"
#include "envoy/service/discovery/v3/ads.grpc.pb.h"
#include "meshplug/v1/admin.grpc.pb.h"
#include "meshplug/v1/identity.grpc.pb.h"
#include "control_plane/testing/mesh_fixtures.h"

ABSL_FLAG(std::string, config, "",
          "meshctl's credentials file (server, CA, admin token) that the control plane wrote with --client_config "
          "(default: $MESHPLUG_HOME/config, else ~/.config/meshplug/config)");
ABSL_FLAG(std::string, server, "",
          "control plane address, xDS and admin API (default: the config's server); replicas: comma-separated, "
          "agents are spread over them in turn, and changes are applied through the first");
ABSL_FLAG(int, agents, 100, "simulated agents");
ABSL_FLAG(std::string, protocol, "delta", "sotw or delta");
ABSL_FLAG(int, services, 10, "mesh services; agent i is a workload of service i % services");
ABSL_FLAG(int, repeats, 5, "repeats of each change");
ABSL_FLAG(std::string, cp_pid, "", "control plane pids, comma-separated, for RSS and CPU (summed; empty: not measured)");
ABSL_FLAG(int, quiet_ms, 400, "a change has converged when no agent received anything this long");
ABSL_FLAG(int, timeout_s, 300, "give up waiting for one step after this long");
ABSL_FLAG(int, pause_s, 0,
          "idle this long before and after each kind of change, announced on stderr (\"== NAME: starting\", \"== NAME: "
          "done\"), so that a profiler can start and stop between changes (bench/xds_load/count.sh)");
ABSL_FLAG(std::string, ns, "xdsload", "namespace of the simulated agents");
ABSL_FLAG(std::string, egress_hosts, "",
          "MeshConfig spec.traffic.egressHosts, comma-separated (e.g. ./svc-0): what each agent may call and "
          "so receives; empty: every Service");

ABSL_FLAG(bool, envoy_types, false,
          "each agent also subscribes to Envoy's Cluster, ClusterLoadAssignment, Listener and RouteConfiguration "
          "(as a gRPC or Envoy client of the same workload would)");

namespace {

using meshplug::Cat;
namespace fixtures = meshplug::control_plane::testing;
namespace discovery = envoy::service::discovery::v3;
using Clock = std::chrono::steady_clock;

// Agents joining at once before the run: enough to hide the round trips, so 10,000 join
// in seconds; more would only queue at the control plane.
constexpr int kJoinThreads = 8;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

const std::vector<std::string>& Types() {
  static const auto* t = [] {
    auto* types = new std::vector<std::string>{
        "type.googleapis.com/meshplug.v1.AgentSettings", "type.googleapis.com/meshplug.v1.PluginScript",
        "type.googleapis.com/meshplug.v1.Cluster",       "type.googleapis.com/meshplug.v1.Endpoints",
        "type.googleapis.com/meshplug.v1.Service",       "type.googleapis.com/meshplug.v1.ChainSet",
    };
    if (absl::GetFlag(FLAGS_envoy_types)) {
      types->insert(types->end(), {"type.googleapis.com/envoy.config.cluster.v3.Cluster",
                                   "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
                                   "type.googleapis.com/envoy.config.listener.v3.Listener",
                                   "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"});
    }
    return types;
  }();
  return *t;
}

// Shared counters of all streams.
struct Totals {
  std::atomic<int64_t> responses{0};
  std::atomic<int64_t> resources{0};
  std::atomic<int64_t> bytes{0};
  std::atomic<int64_t> last_ack_ns{0};
  std::atomic<int> complete{0};  // agents that have every type
  std::atomic<int> failed{0};    // streams that failed (each agent then reconnects)
};

// Runs each function at its time, on one thread: the simulated agents' reconnects, which
// must not wait in gRPC's callbacks.
class Timers {
 public:
  Timers() : thread_([this] { Run(); }) {}
  ~Timers() { Stop(); }
  void After(std::chrono::milliseconds delay, std::function<void()> fn) {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    due_.emplace(Clock::now() + delay, std::move(fn));
    cv_.notify_one();
  }
  // Drops what has not run yet; returns once nothing runs.
  void Stop() {
    {
      std::lock_guard lock(mu_);
      stopped_ = true;
      due_.clear();
      cv_.notify_one();
    }
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Run() {
    std::unique_lock lock(mu_);
    while (!stopped_) {
      if (due_.empty()) {
        cv_.wait(lock);
        continue;
      }
      if (Clock::now() < due_.begin()->first) {
        // Woken early, by a new earlier entry, by Stop, or for no reason: look again.
        cv_.wait_until(lock, due_.begin()->first);
        continue;
      }
      auto fn = std::move(due_.begin()->second);
      due_.erase(due_.begin());
      lock.unlock();
      fn();
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::multimap<Clock::time_point, std::function<void()>> due_;
  bool stopped_ = false;
  std::thread thread_;
};

// What one simulated agent received, over every stream it opened.
struct AgentRecord {
  explicit AgentRecord(int index) : index(index), backoff(meshplug::kBackoffBase, meshplug::kBackoffMax, index) {}
  const int index;
  std::mutex mu;
  std::set<std::string> seen_types;  // under mu
  int64_t started_ns = 0;            // the first stream's start
  meshplug::Backoff backoff;         // over the streams that failed in a row; under mu
  std::atomic<int64_t> responses{0};
  std::atomic<int64_t> last_ack_ns{0};
  std::atomic<int64_t> complete_ns{0};
};

envoy::config::core::v3::Node NodeFor(int i, int services) {
  envoy::config::core::v3::Node node;
  node.add_client_features(meshplug::xds_types::kScriptsByContentFeature);  // as today's agents
  node.set_id(Cat("agent-", i));
  auto& md = *node.mutable_metadata()->mutable_fields();
  md["namespace"].set_string_value(absl::GetFlag(FLAGS_ns));
  auto& labels = *md["labels"].mutable_struct_value()->mutable_fields();
  labels["app"].set_string_value(Cat("svc-", i % services));
  labels["group"].set_string_value(Cat("g", i % 10));  // g0: 10% of the agents
  // Endpoint data only: nothing ever connects to these loopback addresses.
  md["address"].set_string_value(Cat("127.1.", (i / 250) % 250, ".", i % 250 + 1));
  md["inbound_port"].set_number_value(15003);
  md["service_account"].set_string_value(Cat("svc-", i % services));
  return node;
}

// One stream of a simulated agent: a bidirectional ADS stream, one write in flight at a
// time. When it fails, `on_failure` runs (the agent reconnects).
template <typename Req, typename Resp>
class AgentStream : public grpc::ClientBidiReactor<Req, Resp> {
 public:
  AgentStream(AgentRecord& record, int services, Totals& totals, std::function<void()> on_failure)
      : services_(services), totals_(totals), record_(record), on_failure_(std::move(on_failure)) {}

  void Start(discovery::AggregatedDiscoveryService::Stub* stub);

  void Cancel() { ctx_.TryCancel(); }
  bool done() {
    std::lock_guard lock(mu_);
    return done_;
  }
  void WaitDone() {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(10), [&] { return done_; });
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows
    record_.responses.fetch_add(1);
    totals_.responses.fetch_add(1);
    totals_.bytes.fetch_add(static_cast<int64_t>(response_.ByteSizeLong()));
    totals_.resources.fetch_add(response_.resources_size());
    Req ack = Ack(response_);
    {
      std::lock_guard lock(record_.mu);
      record_.backoff.Reset();
      if (record_.seen_types.insert(response_.type_url()).second && record_.seen_types.size() == Types().size()) {
        record_.complete_ns = NowNs();
        totals_.complete.fetch_add(1);
      }
    }
    {
      std::lock_guard lock(mu_);
      Enqueue(std::move(ack));
    }
    this->StartRead(&response_);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mu_);
    writing_ = false;
    if (!ok) return;
    if (write_is_ack_) {
      const int64_t now = NowNs();
      record_.last_ack_ns = now;
      int64_t prev = totals_.last_ack_ns.load();
      while (prev < now && !totals_.last_ack_ns.compare_exchange_weak(prev, now)) {
      }
    }
    WriteNext();
  }

  void OnDone(const grpc::Status& s) override {
    std::lock_guard lock(mu_);
    // A failed stream is freed once done, when its agent opens the next (its OnDone may
    // still be returning then): meanwhile it keeps nothing large. A response can be megabytes.
    Resp().Swap(&response_);
    Req().Swap(&request_);
    queue_.clear();
    if (!s.ok() && !cancelled_) {
      if (totals_.failed.fetch_add(1) < 3) {
        std::fprintf(stderr, "agent-%d: stream ended (it reconnects): %d %s\n", record_.index,
                     static_cast<int>(s.error_code()), s.error_message().c_str());
      }
      on_failure_();
    }
    done_ = true;
    cv_.notify_all();
  }

  void MarkCancelled() {
    std::lock_guard lock(mu_);
    cancelled_ = true;
  }

 private:
  Req Initial(const std::string& type, bool with_node);
  Req Ack(const Resp& resp);

  void Enqueue(Req req) {
    queue_.push_back(std::move(req));
    WriteNext();
  }
  void WriteNext() {
    if (writing_ || queue_.empty()) return;
    request_ = std::move(queue_.front());
    queue_.pop_front();
    write_is_ack_ = !request_.response_nonce().empty();
    writing_ = true;
    this->StartWrite(&request_);
  }

  const int services_;
  Totals& totals_;
  AgentRecord& record_;
  const std::function<void()> on_failure_;
  grpc::ClientContext ctx_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Req> queue_;
  Req request_;
  Resp response_;
  bool writing_ = false;
  bool write_is_ack_ = false;
  bool done_ = false;
  bool cancelled_ = false;
};

using SotwStream = AgentStream<discovery::DiscoveryRequest, discovery::DiscoveryResponse>;
using DeltaStream = AgentStream<discovery::DeltaDiscoveryRequest, discovery::DeltaDiscoveryResponse>;

template <>
discovery::DiscoveryRequest SotwStream::Initial(const std::string& type, bool with_node) {
  discovery::DiscoveryRequest r;
  r.set_type_url(type);
  if (with_node) *r.mutable_node() = NodeFor(record_.index, services_);
  return r;
}
template <>
discovery::DiscoveryRequest SotwStream::Ack(const discovery::DiscoveryResponse& resp) {
  discovery::DiscoveryRequest r;
  r.set_type_url(resp.type_url());
  r.set_version_info(resp.version_info());
  r.set_response_nonce(resp.nonce());
  return r;
}
template <>
discovery::DeltaDiscoveryRequest DeltaStream::Initial(const std::string& type, bool with_node) {
  discovery::DeltaDiscoveryRequest r;
  r.set_type_url(type);
  r.add_resource_names_subscribe("*");
  if (with_node) *r.mutable_node() = NodeFor(record_.index, services_);
  return r;
}
template <>
discovery::DeltaDiscoveryRequest DeltaStream::Ack(const discovery::DeltaDiscoveryResponse& resp) {
  discovery::DeltaDiscoveryRequest r;
  r.set_type_url(resp.type_url());
  r.set_response_nonce(resp.nonce());
  return r;
}

template <>
void SotwStream::Start(discovery::AggregatedDiscoveryService::Stub* stub) {
  stub->async()->StreamAggregatedResources(&ctx_, this);
  this->StartRead(&response_);
  {
    std::lock_guard lock(mu_);
    for (size_t t = 0; t < Types().size(); ++t) Enqueue(Initial(Types()[t], t == 0));
  }
  this->StartCall();
}
template <>
void DeltaStream::Start(discovery::AggregatedDiscoveryService::Stub* stub) {
  stub->async()->DeltaAggregatedResources(&ctx_, this);
  this->StartRead(&response_);
  {
    std::lock_guard lock(mu_);
    for (size_t t = 0; t < Types().size(); ++t) Enqueue(Initial(Types()[t], t == 0));
  }
  this->StartCall();
}

// A simulated agent: it opens a stream, and after one fails opens the next after the
// agent's own jittered backoff (its defaults: kBackoffBase, doubled up to kBackoffMax), so that a storm
// of failed connections comes back spread out, as real agents would.
template <typename S>
class SimAgent {
 public:
  SimAgent(int index, int services, Totals& totals, Timers& timers, discovery::AggregatedDiscoveryService::Stub* stub)
      : record_(index), services_(services), totals_(totals), timers_(timers), stub_(stub) {}

  void Start() {
    record_.started_ns = NowNs();
    Open();
  }
  int64_t responses() const { return record_.responses.load(); }
  int64_t last_ack_ns() const { return record_.last_ack_ns.load(); }
  int64_t complete_ns() const { return record_.complete_ns.load(); }
  int64_t started_ns() const { return record_.started_ns; }

  // Ends the current stream without a reconnect; the timers must be stopped first, so that
  // no other stream opens.
  void Cancel() {
    if (S* current = Current()) {
      current->MarkCancelled();
      current->Cancel();
    }
  }
  void WaitDone() {
    std::lock_guard lock(mu_);
    for (auto& retired : retired_) retired->WaitDone();
    if (current_) current_->WaitDone();
  }

 private:
  void Open() {
    auto next = std::make_unique<S>(record_, services_, totals_, [this] { Reconnect(); });
    S* started = next.get();
    {
      std::lock_guard lock(mu_);
      // A failed stream's OnDone may still be returning when the next one opens: it is
      // destroyed only once done (nearly always by now: the backoff is 50 ms at least).
      if (current_) retired_.push_back(std::move(current_));
      std::erase_if(retired_, [](const auto& retired) { return retired->done(); });
      current_ = std::move(next);
    }
    started->Start(stub_);
  }
  S* Current() {
    std::lock_guard lock(mu_);
    return current_.get();
  }
  // From the failed stream's OnDone.
  void Reconnect() {
    std::chrono::milliseconds delay;
    {
      // Not mu_: the failing stream holds its own lock here, and Cancel takes it after mu_.
      std::lock_guard lock(record_.mu);
      delay = record_.backoff.Next();
    }
    timers_.After(delay, [this] { Open(); });
  }

  AgentRecord record_;
  const int services_;
  Totals& totals_;
  Timers& timers_;
  discovery::AggregatedDiscoveryService::Stub* const stub_;
  std::mutex mu_;
  std::unique_ptr<S> current_;
  std::vector<std::unique_ptr<S>> retired_;
};

// ------------------------------------------------------------------------------ process

struct ProcSample {
  double cpu_s = 0;
  int64_t rss_kb = 0;
  int64_t hwm_kb = 0;
  int threads = 0;
};

ProcSample SampleOne(int pid) {
  ProcSample s;
  if (pid <= 0) return s;
  std::ifstream stat(Cat("/proc/", pid, "/stat"));
  std::string content((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  auto close = content.rfind(')');
  if (close != std::string::npos) {
    std::istringstream in(content.substr(close + 2));
    std::vector<std::string> f;
    std::string x;
    while (in >> x) f.push_back(x);
    if (f.size() > 13) s.cpu_s = (std::stod(f[11]) + std::stod(f[12])) / static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  std::ifstream status(Cat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) s.rss_kb = std::stoll(line.substr(6));
    if (line.rfind("VmHWM:", 0) == 0) s.hwm_kb = std::stoll(line.substr(6));
    if (line.rfind("Threads:", 0) == 0) s.threads = std::stoi(line.substr(8));
  }
  return s;
}

// The control planes' CPU, RSS and threads, summed.
ProcSample Sample(const std::vector<int>& pids) {
  ProcSample sum;
  for (int pid : pids) {
    const ProcSample s = SampleOne(pid);
    sum.cpu_s += s.cpu_s;
    sum.rss_kb += s.rss_kb;
    sum.hwm_kb += s.hwm_kb;
    sum.threads += s.threads;
  }
  return sum;
}

// --------------------------------------------------------------------------- the mesh

std::string PluginScriptYaml(int rev) {
  return fixtures::PluginYaml("bench-all", 115, Cat("function on_request(req, ctx) req.headers:set('x-rev', '", rev, "') end"));
}

// --egress_hosts as a YAML flow list's items.
std::string EgressHostsYaml() {
  std::string items;
  for (const std::string& entry : meshplug::resources::SplitEgressHosts(absl::GetFlag(FLAGS_egress_hosts))) {
    if (!entry.empty()) items += Cat(items.empty() ? "" : ", ", "\"", entry, "\"");
  }
  return items;
}

// Whether Service `name` is among every agent's egress hosts (all agents share one
// namespace, so one scope).
bool ServiceReaches(const std::string& name) {
  const std::string flag = absl::GetFlag(FLAGS_egress_hosts);
  if (flag.empty()) return true;
  auto hosts = meshplug::resources::ParseEgressHosts(meshplug::resources::SplitEgressHosts(flag));
  const std::string ns = absl::GetFlag(FLAGS_ns);
  return hosts.ok() && meshplug::resources::EgressAllows(*hosts, ns, ns, name);
}

std::string MeshYaml(int services) {
  const std::string ns = absl::GetFlag(FLAGS_ns);
  std::string y = Cat(R"(apiVersion: v1
kind: Namespace
metadata: {name: )", ns, R"(, labels: {openservicemesh.io/monitored-by: osm}}
---
apiVersion: config.openservicemesh.io/v1alpha2
kind: MeshConfig
metadata: {name: osm-mesh-config}
spec: {featureFlags: {enablePluginPolicy: true}, traffic: {egressHosts: [)", EgressHostsYaml(), R"(]}}
---
)", PluginScriptYaml(0),
                   "---\n", fixtures::PluginYaml("bench-tenth", 116, "function on_request(req, ctx) end"), "---\n",
                   fixtures::PluginChainYaml(ns, "bench-all-chain", "outbound-http", "bench-all",
                                             "{podSelector: {}, namespaceSelector: {}}"),
                   "---\n",
                   fixtures::PluginChainYaml(ns, "bench-tenth-chain", "outbound-http", "bench-tenth",
                                             "{podSelector: {matchLabels: {group: g0}}}"));
  for (int s = 0; s < services; ++s) {
    y += Cat("---\napiVersion: v1\nkind: Service\nmetadata: {name: svc-", s, ", namespace: ", ns,
             "}\nspec: {ports: [{port: 80}], selector: {app: svc-", s, "}}\n");
  }
  return y;
}

std::string PluginConfigYaml(int rev) {
  const std::string ns = absl::GetFlag(FLAGS_ns);
  return Cat("apiVersion: plugin.flomesh.io/v1alpha1\nkind: PluginConfig\nmetadata: {name: bench-tenth-config, "
             "namespace: ", ns, "}\nspec:\n  plugin: bench-tenth\n  destinationRefs: [{kind: Service, name: svc-0, "
             "namespace: ", ns, "}]\n  config: {Rev: ", rev, "}\n");
}


std::string NewServiceYaml(int rev) {
  return Cat("apiVersion: v1\nkind: Service\nmetadata: {name: new-svc-", rev, ", namespace: ",
             absl::GetFlag(FLAGS_ns), "}\nspec: {ports: [{port: 8080}], selector: {app: new-svc-", rev, "}}\n");
}

// A workload joining svc-0 (applied by hand, as for a workload without an agent): the
// endpoints of svc-0 change for every agent that may call it.
std::string JoinedWorkloadYaml(int rev) {
  return Cat("apiVersion: meshplug.io/v1\nkind: Workload\nmetadata: {name: joined-", rev, ", namespace: ",
             absl::GetFlag(FLAGS_ns), ", labels: {app: svc-0}}\nspec: {address: 10.250.", rev / 250, ".",
             rev % 250 + 1, ", inboundPort: 15003}\n");
}

// ------------------------------------------------------------------------- identities

std::chrono::system_clock::time_point CallDeadline() {
  return std::chrono::system_clock::now() + std::chrono::seconds(60);
}

// The admin API as meshctl reaches it: TLS verified with the config's CA, its token on
// every call.
std::unique_ptr<meshplug::v1::Admin::Stub> AdminStub(const std::string& server, const meshplug::ClientConfig& config) {
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = config.ca_pem;
  auto creds = grpc::CompositeChannelCredentials(grpc::SslCredentials(tls), grpc::AccessTokenCredentials(config.token));
  return meshplug::v1::Admin::NewStub(grpc::CreateChannel(server, creds));
}

// One agent's workload identity.
struct AgentIdentity {
  std::string key_pem;
  std::string chain_pem;   // its certificate, for NS/agent-i
  std::string bundle_pem;  // the roots that verify the control plane
};

// Which agent and which step of its join failed, and why.
absl::Status Failed(const std::string& workload, const char* step, const std::string& why) {
  return absl::InternalError(Cat(workload, ": ", step, ": ", why));
}

// Agent i's identity, got as a real agent joins: a join token from the admin API, then a
// certificate for a fresh key, signed for the workload that token names. `signer` is one
// TLS connection (no client certificate) for every join, so each token goes on its call.
absl::StatusOr<AgentIdentity> JoinAgent(meshplug::v1::Admin::Stub& admin, meshplug::v1::Identity::Stub& signer,
                                        int i, int services) {
  const std::string workload = Cat(absl::GetFlag(FLAGS_ns), "/agent-", i);
  meshplug::v1::CreateTokenRequest token_req;
  token_req.set_role("join");
  token_req.set_workload(workload);
  token_req.set_service_account(Cat("svc-", i % services));  // as NodeFor says
  token_req.set_ttl_seconds(3600);
  meshplug::v1::CreateTokenResponse token;
  grpc::ClientContext token_ctx;
  token_ctx.set_deadline(CallDeadline());
  if (grpc::Status st = admin.CreateToken(&token_ctx, token_req, &token); !st.ok()) {
    return Failed(workload, "CreateToken", st.error_message());
  }
  auto key = meshplug::x509::NewPrivateKey();
  if (!key.ok()) return Failed(workload, "key", std::string(key.status().message()));
  auto csr = meshplug::x509::MakeCsr(*key, "");
  if (!csr.ok()) return Failed(workload, "CSR", std::string(csr.status().message()));
  meshplug::v1::SignRequest sign_req;
  sign_req.set_csr_pem(*csr);
  sign_req.set_node_id(workload);
  meshplug::v1::SignResponse cert;
  grpc::ClientContext sign_ctx;
  sign_ctx.set_deadline(CallDeadline());
  sign_ctx.set_credentials(grpc::AccessTokenCredentials(token.token()));
  if (grpc::Status st = signer.Sign(&sign_ctx, sign_req, &cert); !st.ok()) {
    return Failed(workload, "Identity.Sign", st.error_message());
  }
  return AgentIdentity{*std::move(key), cert.certificate_chain_pem(), cert.trust_bundle_pem()};
}

// Every agent's identity, kJoinThreads at a time; the first failure stops the rest.
absl::StatusOr<std::vector<AgentIdentity>> JoinAgents(meshplug::v1::Admin::Stub& admin, const std::string& server,
                                                     const std::string& ca_pem, int n, int services) {
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = ca_pem;
  auto signer = meshplug::v1::Identity::NewStub(grpc::CreateChannel(server, grpc::SslCredentials(tls)));
  std::vector<AgentIdentity> identities(n);
  std::atomic<int> next{0}, done{0};
  std::mutex mu;
  absl::Status failure;
  const int64_t t0 = NowNs();
  auto work = [&] {
    for (int i = next++; i < n; i = next++) {
      auto identity = JoinAgent(admin, *signer, i, services);
      if (!identity.ok()) {
        std::lock_guard lock(mu);
        if (failure.ok()) failure = identity.status();
        next = n;
        return;
      }
      identities[i] = *std::move(identity);
      const int d = ++done;
      if (d % std::max(1, n / 10) == 0 || d == n) {
        std::fprintf(stderr, "identities: %d of %d (%.1f s)\n", d, n, (NowNs() - t0) / 1e9);
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < std::min(kJoinThreads, n); ++t) pool.emplace_back(work);
  for (auto& t : pool) t.join();
  if (!failure.ok()) return failure;
  return identities;
}

// Agent i's own connection, with its certificate: what lets its stream speak for it.
std::unique_ptr<discovery::AggregatedDiscoveryService::Stub> AgentStub(const std::string& server,
                                                                       const AgentIdentity& identity) {
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = identity.bundle_pem;
  tls.pem_private_key = identity.key_pem;
  tls.pem_cert_chain = identity.chain_pem;
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, 64 << 20);
  return discovery::AggregatedDiscoveryService::NewStub(
      grpc::CreateCustomChannel(server, grpc::SslCredentials(tls), args));
}

// --------------------------------------------------------------------------- the run

bool Apply(meshplug::v1::Admin::Stub& admin, const std::string& yaml) {
  meshplug::v1::ApplyRequest req;
  auto* m = req.add_manifests();
  m->set_source("xds_load");
  m->set_content(yaml);
  meshplug::v1::ApplyResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  grpc::Status st = admin.Apply(&ctx, req, &resp);
  if (!st.ok()) std::fprintf(stderr, "apply failed: %s\n", st.error_message().c_str());
  return st.ok();
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

std::string Json(const std::vector<double>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += Cat(i ? "," : "", v[i]);
  return out + "]";
}

template <typename S>
int Run() {
  const int n = absl::GetFlag(FLAGS_agents);
  const int services = absl::GetFlag(FLAGS_services);
  std::vector<int> cp_pids;
  const std::string pid_list = absl::GetFlag(FLAGS_cp_pid);  // Split's views point into it
  for (std::string_view pid : meshplug::Split(pid_list, ',')) {
    int v = 0;
    if (meshplug::ParseNumber(pid, v)) cp_pids.push_back(v);
  }
  const auto quiet = std::chrono::milliseconds(absl::GetFlag(FLAGS_quiet_ms));
  const auto timeout = std::chrono::seconds(absl::GetFlag(FLAGS_timeout_s));

  const std::string config_path =
      absl::GetFlag(FLAGS_config).empty() ? meshplug::DefaultClientConfigPath() : absl::GetFlag(FLAGS_config);
  auto config = meshplug::ReadClientConfig(config_path);
  if (!config.ok()) {
    std::fprintf(stderr, "%s\n", std::string(config.status().message()).c_str());
    return 1;
  }
  const std::string server_list = absl::GetFlag(FLAGS_server).empty() ? config->server : absl::GetFlag(FLAGS_server);
  std::vector<std::string> servers;
  for (std::string_view s : meshplug::Split(server_list, ',')) servers.emplace_back(s);
  const std::string& server = servers.front();
  auto admin = AdminStub(server, *config);
  if (!Apply(*admin, MeshYaml(services)) || !Apply(*admin, PluginConfigYaml(0))) return 1;
  std::this_thread::sleep_for(std::chrono::milliseconds(500));

  auto identities = JoinAgents(*admin, server, config->ca_pem, n, services);
  if (!identities.ok()) {
    std::fprintf(stderr, "joining failed: %s\n", std::string(identities.status().message()).c_str());
    return 1;
  }
  std::vector<std::unique_ptr<discovery::AggregatedDiscoveryService::Stub>> stubs;
  for (size_t i = 0; i < identities->size(); ++i) stubs.push_back(AgentStub(servers[i % servers.size()], (*identities)[i]));

  Totals totals;
  Timers timers;
  const ProcSample before = Sample(cp_pids);
  std::vector<std::unique_ptr<SimAgent<S>>> agents;
  // On every way out (an apply that fails returns early): no reconnect runs on an agent
  // being destroyed, and no stream outlives its agent.
  const absl::Cleanup stop_agents = [&] {
    timers.Stop();
    for (auto& a : agents) a->Cancel();
    for (auto& a : agents) a->WaitDone();
  };
  const int64_t t0 = NowNs();
  for (int i = 0; i < n; ++i) {
    agents.push_back(std::make_unique<SimAgent<S>>(i, services, totals, timers, stubs[i].get()));
    agents.back()->Start();
  }
  const int64_t opened = NowNs();
  // Connected: every agent has a response of every type (streams that fail reconnect).
  const auto deadline = Clock::now() + timeout;
  while (totals.complete.load() < n && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const int64_t all_complete = NowNs();
  const int complete = totals.complete.load();
  // Settled: registrations make the control plane re-publish endpoints; wait for quiet.
  auto wait_quiet = [&](int64_t since_ns) {
    int64_t last = totals.responses.load();
    auto last_change = Clock::now();
    const auto quiet_deadline = Clock::now() + timeout;
    while (Clock::now() < quiet_deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      int64_t now = totals.responses.load();
      if (now != last) {
        last = now;
        last_change = Clock::now();
      } else if (Clock::now() - last_change >= quiet) {
        break;
      }
    }
    return (std::max(totals.last_ack_ns.load(), since_ns) - since_ns) / 1e6;
  };
  const double settle_ms = wait_quiet(t0);
  const ProcSample connected = Sample(cp_pids);
  std::vector<double> connect_ms;
  for (auto& a : agents) {
    if (a->complete_ns()) connect_ms.push_back((a->complete_ns() - a->started_ns()) / 1e6);
  }

  std::string out = Cat("{\"protocol\":\"", absl::GetFlag(FLAGS_protocol), "\",\"replicas\":", servers.size(),
                        ",\"tls\":true,\"agents\":", n,
                        ",\"channels\":", n, ",\"services\":", services,
                        ",\"open_ms\":", (opened - t0) / 1e6,
                        ",\"all_connected_ms\":", (all_complete - t0) / 1e6, ",\"connected\":", complete,
                        ",\"settled_ms\":", settle_ms, ",\"failed_streams\":", totals.failed.load(),
                        ",\"connect_p50_ms\":", Percentile(connect_ms, 0.5),
                        ",\"connect_p99_ms\":", Percentile(connect_ms, 0.99),
                        ",\"connect_responses\":", totals.responses.load(),
                        ",\"connect_bytes\":", totals.bytes.load(),
                        ",\"cp_rss_before_kb\":", before.rss_kb, ",\"cp_rss_connected_kb\":", connected.rss_kb,
                        ",\"cp_rss_per_agent_kb\":", n ? (connected.rss_kb - before.rss_kb) / static_cast<double>(n) : 0,
                        ",\"cp_cpu_connect_s\":", connected.cpu_s - before.cpu_s,
                        ",\"cp_threads\":", connected.threads);
  std::fprintf(stderr, "%d agents (%s, mTLS): all connected in %.0f ms, settled in %.0f ms, CP RSS %.1f MB\n", n,
               absl::GetFlag(FLAGS_protocol).c_str(), (all_complete - t0) / 1e6, settle_ms, connected.rss_kb / 1024.0);

  struct Change {
    const char* name;
    std::string (*yaml)(int);
    int expected;  // agents that must receive something
  };
  int tenth = 0;
  for (int i = 0; i < n; ++i) tenth += (i % 10 == 0);
  const Change changes[] = {{"plugin_config", PluginConfigYaml, tenth},
                            {"plugin_script", PluginScriptYaml, n},
                            {"new_service", NewServiceYaml, ServiceReaches("new-svc-1") ? n : 0},
                            {"workload_joins", JoinedWorkloadYaml, ServiceReaches("svc-0") ? n : 0}};
  const int repeats = absl::GetFlag(FLAGS_repeats);
  const auto pause = std::chrono::seconds(absl::GetFlag(FLAGS_pause_s));
  auto announce = [&](const char* name, const char* what) {
    if (pause.count() == 0) return;
    std::fprintf(stderr, "== %s: %s\n", name, what);
    std::this_thread::sleep_for(pause);
  };
  for (const Change& change : changes) {
    std::vector<double> conv_ms, apply_ms, cpu_s, pushed, responses, bytes;
    announce(change.name, "starting");
    for (int r = 1; r <= repeats; ++r) {
      std::vector<int64_t> before_counts;
      for (auto& a : agents) before_counts.push_back(a->responses());
      const int64_t responses_before = totals.responses.load();
      const int64_t bytes_before = totals.bytes.load();
      const ProcSample c0 = Sample(cp_pids);
      const int64_t start = NowNs();
      if (!Apply(*admin, change.yaml(r))) return 1;
      apply_ms.push_back((NowNs() - start) / 1e6);
      // Wait until every expected agent got something, then for quiet.
      const auto step_deadline = Clock::now() + timeout;
      int got = 0;
      while (Clock::now() < step_deadline) {
        got = 0;
        for (size_t i = 0; i < agents.size(); ++i) got += agents[i]->responses() > before_counts[i];
        if (got >= change.expected) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
      wait_quiet(start);
      int64_t last_ack = start;
      got = 0;
      for (size_t i = 0; i < agents.size(); ++i) {
        if (agents[i]->responses() > before_counts[i]) {
          ++got;
          last_ack = std::max(last_ack, agents[i]->last_ack_ns());
        }
      }
      const ProcSample c1 = Sample(cp_pids);
      conv_ms.push_back((last_ack - start) / 1e6);
      cpu_s.push_back(c1.cpu_s - c0.cpu_s);
      pushed.push_back(got);
      responses.push_back(static_cast<double>(totals.responses.load() - responses_before));
      bytes.push_back(static_cast<double>(totals.bytes.load() - bytes_before));
      std::fprintf(stderr, "  %s #%d: %d agents updated (expected %d), last ACK after %.1f ms, CP CPU %.2f s\n",
                   change.name, r, got, change.expected, conv_ms.back(), cpu_s.back());
    }
    announce(change.name, "done");
    out += Cat(",\"", change.name, "\":{\"expected_agents\":", change.expected, ",\"agents_updated\":", Json(pushed),
               ",\"responses\":", Json(responses), ",\"bytes\":", Json(bytes), ",\"convergence_ms\":", Json(conv_ms),
               ",\"p50_ms\":", Percentile(conv_ms, 0.5), ",\"p99_ms\":", Percentile(conv_ms, 0.99),
               ",\"apply_p50_ms\":", Percentile(apply_ms, 0.5), ",\"apply_p99_ms\":", Percentile(apply_ms, 0.99),
               ",\"cp_cpu_s\":", Json(cpu_s), "}");
  }
  const ProcSample end = Sample(cp_pids);
  out += Cat(",\"cp_rss_end_kb\":", end.rss_kb, ",\"cp_hwm_kb\":", end.hwm_kb, "}");
  std::printf("%s\n", out.c_str());
  std::fflush(stdout);

  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  meshplug::DisableMutexDeadlockDetection();
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_agents) < 1 || absl::GetFlag(FLAGS_repeats) < 1 || absl::GetFlag(FLAGS_services) < 1) {
    std::fprintf(stderr, "--agents, --repeats and --services must be at least 1\n");
    return 2;
  }
  const std::string protocol = absl::GetFlag(FLAGS_protocol);
  if (protocol == "sotw") return Run<SotwStream>();
  if (protocol == "delta") return Run<DeltaStream>();
  std::fprintf(stderr, "--protocol must be sotw or delta\n");
  return 2;
}
