// meshctl: the command line for the control plane's admin API.
#include <arpa/inet.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cli/manifest_files.h"
#include "absl/time/time.h"
#include "cli/output.h"
#include "common/agent_id.h"
#include "common/client_config.h"
#include "common/files.h"
#include "common/strings.h"
#include "common/traffic_stats.h"
#include "net/http_client.h"
#include "net/prometheus_query.h"
#include "resources/kinds.h"
#include "resources/object.h"
#include "meshplug/v1/admin.grpc.pb.h"
#include "meshplug/v1/resources.pb.h"

namespace meshplug::cli {
namespace {

constexpr const char* kClientVersion = "0.1.0";
constexpr const char* kDefaultServer = "127.0.0.1:15010";

constexpr const char* kUsage = R"(meshctl controls a meshplug control plane.

Usage:
  meshctl apply -f FILE|DIR|- [-f ...] [--dry-run]
  meshctl delete -f FILE|DIR|- [-f ...]
  meshctl delete KIND NAME [-n NAMESPACE]
  meshctl get KIND [NAME] [-n NAMESPACE | -A] [-o yaml|json|table]
  meshctl namespace add NAME [--mesh-name NAME]
  meshctl namespace remove NAME
  meshctl proxy status
  meshctl proxy config_dump AGENT        (AGENT: namespace/name or name.namespace)
  meshctl stat namespace|service|workload|route [NAME] [-n NAMESPACE | -A] [--window 30s]
             [--prometheus http://HOST:PORT] [--direction inbound|outbound]
                                         requests, success rate (status below 400) and
                                         latency p50/p95/p99 as the destinations' agents
                                         measured them (--direction outbound: as the
                                         callers' did): since the agents started, or over
                                         --window (then with RPS); from Prometheus
                                         (--prometheus or $MESHPLUG_PROMETHEUS) or straight
                                         from every agent's /stats
  meshctl tap NAMESPACE/NAME [--path /PREFIX] [--method GET] [--sample 0.1] [--max-rps 100]
                             [--duration 60s] [--admin-token-file FILE] [-o json]
                                         a live summary of each request through that
                                         workload's agent (method, authority, path without
                                         query, status, latency, peer, the plugins that ran
                                         and the one that answered); no headers or bodies.
                                         Sampled and capped by the agent; needs the
                                         agent's admin token (default: its default file)
  meshctl dashboard [--ttl 12h]           the link to the control plane's web dashboard
                                         (--http_listen), with a new read-only token
  meshctl version
  meshctl workload token NAMESPACE/NAME [--ttl 1h] [--service-account SA] [--labels K=V,...]
                                       [--bootstrap [--xds-address HOST:PORT,...]]
                                         a join token with which that workload's agent
                                         gets its certificate (once); --labels binds the
                                         labels the agent must register with; --bootstrap
                                         prints the agent's bootstrap file with it, naming
                                         --xds-address (every replica) or --server
  meshctl bootstrap grpc NAMESPACE/NAME [--ttl 720h] [--service-account SA] [--xds-address HOST:PORT]
                                         gRPC's xDS bootstrap (GRPC_XDS_BOOTSTRAP) for a
                                         proxyless client of that workload (created without
                                         an address if missing): plaintext xDS
                                         (--plaintext_xds_listen) with an xDS token
  meshctl token create --role admin|read-only [--ttl 720h]
  meshctl ca status
  meshctl ca rotate start [--ca-cert FILE --ca-key FILE]
                                         trust a new CA beside the current one (a new
                                         root, or the operator's CA: its certificate with
                                         its chain up to the root, and its key)
  meshctl ca rotate activate [--force]   sign with the new CA; agents renew at once
                                         (refused until connected agents ACKed the
                                         snapshot with the new root, unless --force)
  meshctl ca rotate finish [--force]     drop the old CA (refused while connected agents
                                         still hold its certificates, unless --force)

Kinds: namespace (ns), service (svc), workload (wl), meshconfig, plugin (pi),
       pluginchain (pichn), pluginconfig (picfg), httproute; plural forms work too.

Global flags:
  --config FILE        credentials file: server, CA, admin token (default $MESHPLUG_HOME/config,
                       else ~/.config/meshplug/config; the control plane writes it at start)
  --server HOST:PORT   control plane address (default $MESHCTL_SERVER, else the config's);
                       replicas: HOST:PORT,HOST:PORT,... (the first that answers)
  --token TOKEN        admin API token (default $MESHPLUG_TOKEN, else the config's)
)";

// A failure to report as one line and exit 1.
struct UsageError {
  std::string message;
};

struct Args {
  std::vector<std::string> positional;
  std::vector<std::string> files;
  std::string config;
  std::string server;
  std::string token;
  std::string ttl;
  std::string role;
  std::string service_account;
  bool bootstrap = false;
  std::string xds_address;
  std::string ca_cert, ca_key;
  std::map<std::string, std::string> labels;
  bool force = false;
  std::string ns = "default";
  bool ns_given = false;
  bool all_namespaces = false;
  std::string output = "table";
  bool dry_run = false;
  std::string mesh_name = "osm";
  std::string window;
  std::string prometheus;
  std::string direction = "inbound";
  std::map<std::string, std::string> tap;  // --path --method --sample --max-rps, as /tap's parameters
  std::string duration = "60s";
  std::string admin_token_file;
  std::set<std::string> seen;  // flags given, to refuse those a command does not take
};

// Flags that only store their value, and flags that only switch something on.
const std::map<std::string_view, std::string Args::*> kValueFlags = {
    {"--server", &Args::server},
    {"--config", &Args::config},
    {"--token", &Args::token},
    {"--ttl", &Args::ttl},
    {"--role", &Args::role},
    {"--service-account", &Args::service_account},
    {"--xds-address", &Args::xds_address},
    {"--ca-cert", &Args::ca_cert},
    {"--ca-key", &Args::ca_key},
    {"--mesh-name", &Args::mesh_name},
    {"--duration", &Args::duration},
    {"--admin-token-file", &Args::admin_token_file},
    {"--window", &Args::window},
    {"--prometheus", &Args::prometheus},
};
const std::map<std::string_view, bool Args::*> kSwitches = {
    {"--bootstrap", &Args::bootstrap},
    {"--force", &Args::force},
    {"--dry-run", &Args::dry_run},
};

Args Parse(int argc, char** argv) {
  Args a;
  if (const char* env = std::getenv("MESHCTL_SERVER")) a.server = env;
  if (const char* env = std::getenv("MESHPLUG_TOKEN")) a.token = env;
  if (const char* env = std::getenv("MESHPLUG_PROMETHEUS")) a.prometheus = env;
  a.config = DefaultClientConfigPath();
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    bool has_value = false;
    if (arg.rfind("--", 0) == 0 && arg.find('=') != std::string::npos) {
      value = arg.substr(arg.find('=') + 1);
      arg = arg.substr(0, arg.find('='));
      has_value = true;
    }
    auto next = [&]() -> std::string {
      if (has_value) return value;
      if (i + 1 >= argc) throw UsageError{Cat("flag ", arg, " needs a value")};
      return argv[++i];
    };
    if (const auto flag = kValueFlags.find(arg); flag != kValueFlags.end()) {
      a.*(flag->second) = next();
    } else if (const auto on = kSwitches.find(arg); on != kSwitches.end()) {
      a.*(on->second) = true;
    } else if (arg == "--labels") {
      std::string bad;
      auto labels = ParseLabels(next(), &bad);
      if (!labels) throw UsageError{Cat("--labels: \"", bad, "\" is not KEY=VALUE")};
      a.labels = *std::move(labels);
    } else if (arg == "-f" || arg == "--filename") {
      a.files.push_back(next());
      arg = "-f";
    } else if (arg == "-n" || arg == "--namespace") {
      a.ns = next();
      a.ns_given = true;
      arg = "-n";
    } else if (arg == "-A" || arg == "--all-namespaces") {
      a.all_namespaces = true;
      arg = "-A";
    } else if (arg == "-o" || arg == "--output") {
      a.output = next();
      arg = "-o";
      if (a.output != "yaml" && a.output != "json" && a.output != "table") {
        throw UsageError{Cat("-o must be yaml, json or table, not \"", a.output, "\"")};
      }
    } else if (arg == "--path" || arg == "--method" || arg == "--sample" || arg == "--max-rps") {
      std::string key = arg.substr(2);
      std::replace(key.begin(), key.end(), '-', '_');
      a.tap[key] = next();
    } else if (arg == "--direction") {
      a.direction = next();
      if (a.direction != "inbound" && a.direction != "outbound") {
        throw UsageError{Cat("--direction must be inbound or outbound, not \"", a.direction, "\"")};
      }
    } else if (arg == "-h" || arg == "--help") {
      std::cout << kUsage;
      std::exit(0);
    } else if (arg.size() > 1 && arg[0] == '-') {
      throw UsageError{Cat("unknown flag ", arg, " (see meshctl --help)")};
    } else {
      a.positional.push_back(arg);
      continue;
    }
    a.seen.insert(arg);
  }
  return a;
}

void Allow(const Args& a, const std::string& command, std::set<std::string> allowed) {
  allowed.insert({"--server", "--config", "--token"});
  for (const auto& f : a.seen) {
    if (!allowed.count(f)) throw UsageError{Cat("flag ", f, " does not apply to '", command, "'")};
  }
}

// The admin API over TLS, verified with the config's CA, with the token on every call.
// --server may list control-plane replicas (a,b,c): a call goes to the first that can be
// reached.
class Client {
 public:
  explicit Client(const Args& a) {
    auto config = ReadClientConfig(a.config);
    if (!config.ok()) throw UsageError{std::string(config.status().message())};
    server_ = a.server.empty() ? config->server : a.server;
    if (server_.empty()) server_ = kDefaultServer;
    token_ = a.token.empty() ? config->token : a.token;
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = config->ca_pem;
    auto creds = grpc::SslCredentials(tls);
    if (!token_.empty()) creds = grpc::CompositeChannelCredentials(creds, grpc::AccessTokenCredentials(token_));
    for (std::string_view replica : Split(server_, ',')) {
      stubs_.emplace_back(std::string(replica), v1::Admin::NewStub(grpc::CreateChannel(std::string(replica), creds)));
    }
    ca_pem_ = config->ca_pem;
  }

  const std::string& server() const { return server_; }
  const std::string& ca_pem() const { return ca_pem_; }
  // The replica that answered the last call.
  const std::string& answered() const { return answered_; }

  template <typename Req, typename Resp, typename Method>
  Resp Call(Method method, const Req& req) {
    std::vector<std::string> unreachable;
    for (auto& [replica, stub] : stubs_) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      Resp resp;
      const grpc::Status st = (stub.get()->*method)(&ctx, req, &resp);
      // An error with details is the control plane's own answer (its etcd is down, say);
      // without, gRPC could not reach it: the next replica, if any.
      if ((st.error_code() == grpc::StatusCode::UNAVAILABLE || st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) &&
          st.error_details().empty()) {
        unreachable.push_back(Cat(replica, ": ", st.error_message()));
        continue;
      }
      if (!st.ok()) throw UsageError{st.error_message()};
      answered_ = replica;
      return resp;
    }
    throw UsageError{Cat("cannot reach the control plane at ", server_,
                         " (set --server or MESHCTL_SERVER; its certificate must verify with the CA in --config): ",
                         Join(unreachable, "; "))};
  }

 private:
  std::string server_, token_, ca_pem_, answered_;
  std::vector<std::pair<std::string, std::unique_ptr<v1::Admin::Stub>>> stubs_;  // replica, stub
};

// "1h", "30m", "720h" → seconds; 0 when not given (the control plane's default).
int64_t TtlSeconds(const Args& a) {
  if (a.ttl.empty()) return 0;
  absl::Duration d;
  if (!absl::ParseDuration(a.ttl, &d) || d < absl::Seconds(1)) {
    throw UsageError{Cat("--ttl \"", a.ttl, "\" is not a duration such as 30m, 1h or 720h")};
  }
  return absl::ToInt64Seconds(d);
}

// YAML of a literal block at `indent` spaces.
std::string Indented(const std::string& text, int indent) {
  std::string out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    out += std::string(indent, ' ') + text.substr(start, end - start) + "\n";
    start = end + 1;
  }
  return out;
}

std::vector<v1::Manifest> Manifests(const Args& a) {
  auto m = ReadManifests(a.files);
  if (!m.ok()) throw UsageError{std::string(m.status().message())};
  return *m;
}

void PrintResults(const google::protobuf::RepeatedPtrField<v1::ObjectResult>& results) {
  for (const auto& r : results) {
    std::string kind = r.kind();
    std::transform(kind.begin(), kind.end(), kind.begin(), ::tolower);
    std::cout << kind << "/" << r.name() << " " << r.action() << "\n";
  }
}

int Apply(Client& c, const Args& a) {
  Allow(a, "apply", {"-f", "--dry-run"});
  if (a.files.empty()) throw UsageError{"apply needs -f FILE, a folder, or - for stdin"};
  if (a.positional.size() > 1) throw UsageError{Cat("unexpected argument \"", a.positional[1], "\"")};
  v1::ApplyRequest req;
  for (auto& m : Manifests(a)) *req.add_manifests() = std::move(m);
  req.set_dry_run(a.dry_run);
  PrintResults(c.Call<v1::ApplyRequest, v1::ApplyResponse>(&v1::Admin::Stub::Apply, req).results());
  return 0;
}

int Delete(Client& c, const Args& a) {
  Allow(a, "delete", {"-f", "-n"});
  v1::DeleteRequest req;
  if (!a.files.empty()) {
    if (a.positional.size() > 1) throw UsageError{"give either -f or KIND NAME, not both"};
    for (auto& m : Manifests(a)) *req.add_manifests() = std::move(m);
  } else {
    if (a.positional.size() != 3) throw UsageError{"usage: meshctl delete KIND NAME [-n NAMESPACE] or delete -f FILE"};
    auto* ref = req.add_refs();
    ref->set_kind(a.positional[1]);
    ref->set_name(a.positional[2]);
    ref->set_namespace_(a.ns);
  }
  PrintResults(c.Call<v1::DeleteRequest, v1::DeleteResponse>(&v1::Admin::Stub::Delete, req).results());
  return 0;
}

Objects Unpack(const v1::GetResponse& resp) {
  Objects out;
  for (const auto& any : resp.objects()) {
    std::string type = any.type_url().substr(any.type_url().rfind('/') + 1);
    const resources::KindInfo* kind = resources::FindKindByMessage(type);
    if (kind == nullptr) throw UsageError{Cat("the control plane sent an unknown type ", type)};
    auto obj = kind->New();
    if (!any.UnpackTo(obj.get())) throw UsageError{Cat("cannot read a ", kind->name, " from the control plane")};
    out.push_back(std::move(obj));
  }
  return out;
}

int Get(Client& c, const Args& a) {
  Allow(a, "get", {"-n", "-A", "-o"});
  if (a.positional.size() < 2 || a.positional.size() > 3) {
    throw UsageError{"usage: meshctl get KIND [NAME] [-n NAMESPACE | -A] [-o yaml|json|table]"};
  }
  if (a.all_namespaces && a.ns_given) throw UsageError{"give -n or -A, not both"};
  const resources::KindInfo* kind = resources::ResolveKind(a.positional[1]);
  if (kind == nullptr) {
    throw UsageError{Cat("unknown kind \"", a.positional[1], "\" (known: ", resources::KindNames(), ")")};
  }
  v1::GetRequest req;
  req.set_kind(kind->name);
  req.set_namespace_(a.ns);
  req.set_all_namespaces(a.all_namespaces);
  const bool one = a.positional.size() == 3;
  if (one) req.set_name(a.positional[2]);
  Objects objects = Unpack(c.Call<v1::GetRequest, v1::GetResponse>(&v1::Admin::Stub::Get, req));
  if (a.output == "yaml") {
    std::cout << ToYaml(objects, !one);
  } else if (a.output == "json") {
    std::cout << ToJson(objects, !one);
  } else if (objects.empty()) {
    std::cerr << "No " << kind->name << " resources found"
              << (kind->namespaced() && !a.all_namespaces ? Cat(" in namespace ", a.ns) : "") << ".\n";
  } else {
    std::cout << ToTable(objects, a.all_namespaces && kind->namespaced());
  }
  return 0;
}

int Namespace(Client& c, const Args& a) {
  Allow(a, "namespace", {"--mesh-name"});
  if (a.positional.size() != 3 || (a.positional[1] != "add" && a.positional[1] != "remove")) {
    throw UsageError{"usage: meshctl namespace add|remove NAME"};
  }
  const std::string& name = a.positional[2];
  if (a.positional[1] == "remove") {
    v1::DeleteRequest req;
    auto* ref = req.add_refs();
    ref->set_kind(resources::KindName(resources::Kind::kNamespace));
    ref->set_name(name);
    PrintResults(c.Call<v1::DeleteRequest, v1::DeleteResponse>(&v1::Admin::Stub::Delete, req).results());
    return 0;
  }
  // Keep the labels it already has; add the mesh's.
  std::map<std::string, std::string> labels;
  v1::GetRequest get;
  get.set_kind(resources::KindName(resources::Kind::kNamespace));
  v1::GetResponse all = c.Call<v1::GetRequest, v1::GetResponse>(&v1::Admin::Stub::Get, get);
  for (const auto& obj : Unpack(all)) {
    const auto& meta = resources::Meta(*obj);
    if (meta.name() == name) labels.insert(meta.labels().begin(), meta.labels().end());
  }
  labels["openservicemesh.io/monitored-by"] = a.mesh_name;
  mesh::v1::Namespace ns;
  resources::SetTypeFields(resources::Info(resources::Kind::kNamespace), ns);
  ns.mutable_metadata()->set_name(name);
  ns.mutable_metadata()->mutable_labels()->insert(labels.begin(), labels.end());
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(ns, &json);
  v1::ApplyRequest req;
  auto* m = req.add_manifests();
  m->set_source("namespace add");
  m->set_content(json);
  PrintResults(c.Call<v1::ApplyRequest, v1::ApplyResponse>(&v1::Admin::Stub::Apply, req).results());
  return 0;
}

int Proxy(Client& c, const Args& a) {
  Allow(a, "proxy", {});
  if (a.positional.size() == 2 && a.positional[1] == "status") {
    const auto resp = c.Call<v1::ProxyStatusRequest, v1::ProxyStatusResponse>(&v1::Admin::Stub::ProxyStatus, {});
    if (resp.agents().empty()) {
      std::cerr << "No agents have connected.\n";
      return 0;
    }
    std::cout << ProxyStatusTable(resp);
    return 0;
  }
  if (a.positional.size() == 3 && a.positional[1] == "config_dump") {
    v1::ConfigDumpRequest req;
    req.set_agent(a.positional[2]);
    std::cout << c.Call<v1::ConfigDumpRequest, v1::ConfigDumpResponse>(&v1::Admin::Stub::ConfigDump, req).json();
    return 0;
  }
  throw UsageError{"usage: meshctl proxy status | meshctl proxy config_dump AGENT"};
}

// A join or xds token for the workload positional[2] names, with the flags' ttl, service
// account and labels.
v1::CreateTokenResponse WorkloadToken(Client& c, const Args& a, const std::string& role) {
  v1::CreateTokenRequest req;
  req.set_role(role);
  req.set_workload(a.positional[2]);
  req.set_service_account(a.service_account);
  req.set_ttl_seconds(TtlSeconds(a));
  req.mutable_labels()->insert(a.labels.begin(), a.labels.end());
  return c.Call<v1::CreateTokenRequest, v1::CreateTokenResponse>(&v1::Admin::Stub::CreateToken, req);
}


// gRPC's xDS bootstrap (GRPC_XDS_BOOTSTRAP): gRPC 1.51 offers a control plane no
// certificate, so it connects in plaintext and proves the workload with an xDS token in
// its node's metadata.
int Bootstrap(Client& c, const Args& a) {
  Allow(a, "bootstrap grpc", {"--ttl", "--service-account", "--xds-address"});
  const auto workload = a.positional.size() == 3 && a.positional[1] == "grpc" ? SplitAgentId(a.positional[2]) : std::nullopt;
  if (!workload) {
    throw UsageError{
        "usage: meshctl bootstrap grpc NAMESPACE/NAME [--ttl 720h] [--service-account SA] [--xds-address HOST:PORT]"};
  }
  // Several replicas: gRPC's ipv4: target lists them all and it fails over between them.
  const std::vector<std::string_view> replicas = Split(a.xds_address, ',');
  if (replicas.size() > 1) {
    for (std::string_view r : replicas) {
      unsigned char ip[4];
      const size_t colon = r.rfind(':');
      const std::string host(r.substr(0, colon));
      if (colon == std::string_view::npos || inet_pton(AF_INET, host.c_str(), ip) != 1 || !ParsePort(r.substr(colon + 1))) {
        throw UsageError{Cat("--xds-address: \"", r, "\" is not an IPv4 address and port; gRPC fails over only "
                                                 "between IPv4 addresses (a.b.c.d:PORT,...), or give one host name")};
      }
    }
  }
  const auto resp = WorkloadToken(c, a, "xds");
  std::string server = a.xds_address;
  if (server.empty()) {
    server = resp.plaintext_xds_address();
    if (server.empty()) {
      throw UsageError{
          "the control plane serves no plaintext xDS: start it with --plaintext_xds_listen HOST:PORT (gRPC's xDS "
          "client cannot present a workload certificate), or name the address with --xds-address"};
    }
    // Listening on every address: reach it where meshctl reached this control plane.
    const size_t colon = server.rfind(':');
    if (colon == 0 || IsAnyAddress(server.substr(0, colon))) {
      server = Cat(c.answered().substr(0, c.answered().rfind(':')), server.substr(colon));
    }
  }
  const std::string uri = replicas.size() > 1 ? Cat("ipv4:", server) : server;
  std::cout << "{\n  \"xds_servers\": [{\"server_uri\": " << JsonQuote(uri)
            << ", \"channel_creds\": [{\"type\": \"insecure\"}], \"server_features\": [\"xds_v3\"]}],\n"
            << "  \"node\": {\n    \"id\": " << JsonQuote(workload->second) << ",\n    \"locality\": {},\n"
            << "    \"metadata\": {\"namespace\": " << JsonQuote(workload->first) << ",\n      \"token\": "
            << JsonQuote(resp.token()) << "}\n  }\n}\n";
  std::cerr << "gRPC xDS bootstrap for " << a.positional[2] << ": the token reads its configuration until "
            << Rfc3339(std::chrono::system_clock::from_time_t(resp.expires_unix())) << "; keep the file private\n";
  return 0;
}

int Workload(Client& c, const Args& a) {
  Allow(a, "workload token", {"--ttl", "--service-account", "--labels", "--bootstrap", "--xds-address"});
  if (a.positional.size() != 3 || a.positional[1] != "token") {
    throw UsageError{
        "usage: meshctl workload token NAMESPACE/NAME [--ttl 1h] [--service-account SA] [--labels K=V,...] [--bootstrap "
        "[--xds-address HOST:PORT,...]]"};
  }
  const auto resp = WorkloadToken(c, a, "join");
  if (!a.bootstrap) {
    std::cout << resp.token() << "\n";
    std::cerr << "join token for " << a.positional[2] << " (identity " << resp.spiffe_id() << "), good for one start until "
              << Rfc3339(std::chrono::system_clock::from_time_t(resp.expires_unix())) << "\n";
    return 0;
  }
  const auto [ns, name] = *SplitAgentId(a.positional[2]);  // the control plane accepted it
  std::cout << "# meshplug agent bootstrap for " << a.positional[2] << " (" << resp.spiffe_id()
            << "). The join token is good for one start; keep this file private.\n"
            << "node:\n  id: " << name << "\n  namespace: " << ns << "\n";
  if (!a.labels.empty()) {
    std::cout << "  labels:\n";
    for (const auto& [k, v] : a.labels) std::cout << "    " << JsonQuote(k) << ": " << JsonQuote(v) << "\n";
  }
  // Replicas: the agent fails over between every address listed.
  std::cout << "xds:\n  address: " << (a.xds_address.empty() ? c.server() : a.xds_address) << "\n  ca: |\n"
            << Indented(resp.trust_bundle_pem(), 4) << "join_token: " << resp.token() << "\n";
  return 0;
}

int Token(Client& c, const Args& a) {
  Allow(a, "token create", {"--ttl", "--role"});
  if (a.positional.size() != 2 || a.positional[1] != "create" || (a.role != "admin" && a.role != "read-only")) {
    throw UsageError{"usage: meshctl token create --role admin|read-only [--ttl 720h]"};
  }
  v1::CreateTokenRequest req;
  req.set_role(a.role);
  req.set_ttl_seconds(TtlSeconds(a));
  const auto resp = c.Call<v1::CreateTokenRequest, v1::CreateTokenResponse>(&v1::Admin::Stub::CreateToken, req);
  std::cout << resp.token() << "\n";
  std::cerr << a.role << " token, valid until " << Rfc3339(std::chrono::system_clock::from_time_t(resp.expires_unix()))
            << " (give it with --token or MESHPLUG_TOKEN)\n";
  return 0;
}

int Ca(Client& c, const Args& a) {
  const std::string sub = a.positional.size() > 1 ? a.positional[1] : "";
  v1::RotateCaRequest req;
  if (sub == "status" && a.positional.size() == 2) {
    Allow(a, "ca status", {});
  } else if (sub == "rotate" && a.positional.size() == 3) {
    req.set_step(a.positional[2]);
    Allow(a, "ca rotate " + req.step(),
          req.step() == "start" ? std::set<std::string>{"--ca-cert", "--ca-key"} : std::set<std::string>{"--force"});
    if (a.ca_cert.empty() != a.ca_key.empty()) throw UsageError{"--ca-cert and --ca-key go together"};
    if (!a.ca_cert.empty()) {
      auto cert = ReadFileText(a.ca_cert, "--ca-cert");
      auto key = cert.ok() ? ReadFileText(a.ca_key, "--ca-key") : cert;
      if (!key.ok()) throw UsageError{std::string(key.status().message())};
      req.set_ca_cert_pem(*cert);
      req.set_ca_key_pem(*key);
    }
    req.set_force(a.force);
  } else {
    throw UsageError{"usage: meshctl ca status | meshctl ca rotate start|activate|finish"};
  }
  std::cout << CaStatusText(c.Call<v1::RotateCaRequest, v1::CaStatus>(&v1::Admin::Stub::RotateCa, req));
  return 0;
}

// The series meshctl stat reads, from Prometheus: cumulative, or their increase over the
// window.
std::vector<traffic::Sample> QueryPrometheus(const std::string& url, std::string_view metric,
                                             const std::string& direction, int64_t window_seconds) {
  std::string query = Cat(metric, "{direction=\"", direction, "\"}");
  if (window_seconds > 0) query = Cat("increase(", query, "[", window_seconds, "s])");
  absl::StatusOr<std::vector<traffic::Sample>> samples = net::QueryPrometheus(url, query);
  if (!samples.ok()) throw UsageError{Cat("--prometheus: ", samples.status().message())};
  return *std::move(samples);
}

// Both series of meshctl stat from every connected agent's /stats; an agent that cannot
// be read is named on stderr and left out.
traffic::Golden ScrapeAgents(const v1::ProxyStatusResponse& status) {
  traffic::Golden out;
  size_t read = 0;
  for (const v1::AgentStatus& agent : status.agents()) {
    if (!agent.connected() || agent.admin_address().empty()) continue;
    absl::StatusOr<std::string> text = net::HttpGet(agent.admin_address(), "/stats", std::chrono::seconds(5));
    if (!text.ok()) {
      std::cerr << "meshctl stat: left out agent " << agent.agent() << ": " << text.status().message() << "\n";
      continue;
    }
    ++read;
    traffic::AddAgentStats(*text, agent.agent(), out);
  }
  if (read == 0) throw UsageError{"meshctl stat: no connected agent's /stats could be read (see meshctl proxy status)"};
  return out;
}

int Stat(Client& c, const Args& a) {
  Allow(a, "stat", {"-n", "-A", "--window", "--prometheus", "--direction"});
  if (a.positional.size() < 2 || a.positional.size() > 3) {
    throw UsageError{"usage: meshctl stat namespace|service|workload|route [NAME] [-n NAMESPACE | -A] [--window 30s]"};
  }
  absl::StatusOr<traffic::GroupBy> by = traffic::ParseGroupBy(a.positional[1]);
  if (!by.ok()) throw UsageError{Cat("meshctl stat: ", by.status().message())};
  const std::string name = a.positional.size() == 3 ? a.positional[2] : "";
  int64_t window = 0;
  if (!a.window.empty()) {
    absl::Duration d;
    if (!absl::ParseDuration(a.window, &d) || d < absl::Seconds(1) || d > absl::Hours(24 * 7)) {
      throw UsageError{Cat("--window: \"", a.window, "\" is not a duration from 1s to 168h (like 30s or 5m)")};
    }
    window = absl::ToInt64Seconds(d);
  }
  // Namespaces are the rows of `stat namespace`; the others keep -n's namespace, or all (-A).
  const bool by_namespace = *by == traffic::GroupBy::kNamespace;
  const std::string ns = by_namespace ? name : a.all_namespaces ? "" : a.ns;
  traffic::Golden golden;
  if (!a.prometheus.empty()) {
    golden.requests = QueryPrometheus(a.prometheus, traffic::kRequests, a.direction, window);
    golden.buckets = QueryPrometheus(a.prometheus, traffic::kLatencyBuckets, a.direction, window);
  } else {
    const auto status = c.Call<v1::ProxyStatusRequest, v1::ProxyStatusResponse>(&v1::Admin::Stub::ProxyStatus, {});
    golden = ScrapeAgents(status);
    if (window > 0) {
      std::this_thread::sleep_for(std::chrono::seconds(window));
      const traffic::Golden later = ScrapeAgents(status);
      golden.requests = traffic::Delta(golden.requests, later.requests);
      golden.buckets = traffic::Delta(golden.buckets, later.buckets);
    }
  }
  const std::vector<traffic::Row> rows =
      traffic::Aggregate(golden.requests, golden.buckets, *by, a.direction, ns, by_namespace ? "" : name);
  if (rows.empty()) {
    std::cerr << "No requests" << (ns.empty() ? "" : Cat(" in namespace ", ns)) << (name.empty() ? "" : Cat(" for ", name))
              << (window > 0 ? Cat(" in the last ", a.window) : "") << ".\n";
    return 0;
  }
  std::cout << StatTable(rows, *by, static_cast<double>(window));
  return 0;
}

// One tap summary as a line a person reads.
std::string TapLine(std::string_view json) {
  google::protobuf::Struct line;
  if (!google::protobuf::util::JsonStringToMessage(std::string(json), &line).ok()) return std::string(json);
  const auto& f = line.fields();
  auto str = [&](const char* key) { return f.contains(key) ? f.at(key).string_value() : ""; };
  auto part = [&](const char* side, const char* key) {
    return f.contains(side) && f.at(side).struct_value().fields().contains(key)
               ? f.at(side).struct_value().fields().at(key).string_value()
               : "";
  };
  auto who = [&](const char* side, const char* name) {
    const std::string ns = part(side, "namespace"), n = part(side, name);
    return ns.empty() && n.empty() ? std::string("-") : Cat(ns, "/", n);
  };
  std::vector<std::string> plugins;
  if (f.contains("plugins")) {
    for (const auto& v : f.at("plugins").list_value().values()) plugins.push_back(v.string_value());
  }
  const int status = f.contains("status") ? static_cast<int>(f.at("status").number_value()) : 0;
  char latency[32];
  std::snprintf(latency, sizeof latency, "%.2fms", f.contains("latency_ms") ? f.at("latency_ms").number_value() : 0);
  return Cat(str("direction"), " ", str("method"), " ", str("authority"), str("path"), " ",
             status == 0 ? "no-response" : Cat(":status=", status), " ", latency, " src=",
             who("src", str("direction") == "inbound" ? "service_account" : "workload"), " dst=", who("dst", "workload"),
             " route=", str("route").empty() ? "-" : str("route"), " peer=", str("peer").empty() ? "-" : str("peer"),
             str("answered_by").empty() ? "" : Cat(" answered-by=", str("answered_by")), " plugins=", Join(plugins, ","));
}

int Tap(Client& c, const Args& a) {
  Allow(a, "tap", {"--path", "--method", "--sample", "--max-rps", "--duration", "--admin-token-file", "-o"});
  const auto id = a.positional.size() == 2 ? SplitAgentId(a.positional[1]) : std::nullopt;
  if (!id) throw UsageError{"usage: meshctl tap NAMESPACE/NAME [--path /PREFIX] [--method GET] [--duration 60s]"};
  const std::string& agent = a.positional[1];
  absl::Duration d;
  if (!absl::ParseDuration(a.duration, &d) || d < absl::Seconds(1) || d > absl::Hours(1)) {
    throw UsageError{Cat("--duration: \"", a.duration, "\" is not a duration from 1s to 1h")};
  }
  std::string address;
  const auto status = c.Call<v1::ProxyStatusRequest, v1::ProxyStatusResponse>(&v1::Admin::Stub::ProxyStatus, {});
  for (const v1::AgentStatus& s : status.agents()) {
    if (s.agent() == agent && s.connected()) address = s.admin_address();
  }
  if (address.empty()) {
    throw UsageError{Cat("no connected agent ", agent, " that reported its admin address (see meshctl proxy status)")};
  }
  // Where an agent started with defaults writes it (agent/main.cc).
  const std::string token_file = a.admin_token_file.empty()
                                     ? DefaultStatePath(Cat("agents/", id->first, ".", id->second, ".admin-token"))
                                     : a.admin_token_file;
  absl::StatusOr<std::string> token = ReadFileText(token_file, "the agent's admin token");
  if (!token.ok()) {
    throw UsageError{Cat(token.status().message(), " (give the agent's --admin_token_file with --admin-token-file)")};
  }
  token->erase(token->find_last_not_of(" \n\r\t") + 1);
  std::string target = Cat("/tap?seconds=", absl::ToInt64Seconds(d));
  for (const auto& [key, value] : a.tap) target += Cat("&", key, "=", net::UrlEncode(value));
  const absl::Status streamed = net::HttpStreamLines(
      address, target, *token,
      [&](std::string_view line) {
        std::cout << (a.output == "json" ? std::string(line) : TapLine(line)) << std::endl;
      },
      std::chrono::seconds(5));
  if (!streamed.ok()) throw UsageError{Cat("tap ", agent, ": ", streamed.message())};
  return 0;
}

int Dashboard(Client& c, const Args& a) {
  Allow(a, "dashboard", {"--ttl"});
  if (a.positional.size() != 1) throw UsageError{"usage: meshctl dashboard [--ttl 12h]"};
  absl::StatusOr<ClientConfig> config = ReadClientConfig(a.config);
  if (!config.ok()) throw UsageError{std::string(config.status().message())};
  if (config->http.empty()) {
    throw UsageError{Cat("the control plane of ", a.config, " serves no HTTP pages: start it with --http_listen")};
  }
  v1::CreateTokenRequest req;
  req.set_role("read-only");
  req.set_ttl_seconds(a.ttl.empty() ? 12 * 3600 : TtlSeconds(a));
  const auto resp = c.Call<v1::CreateTokenRequest, v1::CreateTokenResponse>(&v1::Admin::Stub::CreateToken, req);
  std::cout << "http://" << config->http << "/#token=" << resp.token() << "\n";
  std::cerr << "a read-only link, valid until "
            << Rfc3339(std::chrono::system_clock::from_time_t(resp.expires_unix())) << "\n";
  return 0;
}

int Version(Client& c, const Args& a) {
  Allow(a, "version", {});
  std::cout << "client: " << kClientVersion << "\n";
  const auto v = c.Call<v1::VersionRequest, v1::VersionResponse>(&v1::Admin::Stub::Version, {});
  std::cout << "server: " << v.version() << " (store " << v.store() << ", revision " << v.revision() << ")\n";
  return 0;
}

int Run(int argc, char** argv) {
  const Args a = Parse(argc, argv);
  if (a.positional.empty()) {
    std::cerr << kUsage;
    return 1;
  }
  Client client(a);
  const std::string& cmd = a.positional[0];
  if (cmd == "apply") return Apply(client, a);
  if (cmd == "delete") return Delete(client, a);
  if (cmd == "get") return Get(client, a);
  if (cmd == "namespace") return Namespace(client, a);
  if (cmd == "version") return Version(client, a);
  if (cmd == "proxy") return Proxy(client, a);
  if (cmd == "workload") return Workload(client, a);
  if (cmd == "token") return Token(client, a);
  if (cmd == "bootstrap") return Bootstrap(client, a);
  if (cmd == "ca") return Ca(client, a);
  if (cmd == "stat") return Stat(client, a);
  if (cmd == "tap") return Tap(client, a);
  if (cmd == "dashboard") return Dashboard(client, a);
  throw UsageError{Cat("unknown command \"", cmd, "\" (see meshctl --help)")};
}

}  // namespace
}  // namespace meshplug::cli

int main(int argc, char** argv) {
  try {
    return meshplug::cli::Run(argc, argv);
  } catch (const meshplug::cli::UsageError& e) {
    std::cerr << "error: " << e.message << "\n";
    return 1;
  }
}
