#include "integration/reference_scenario.h"

#include <signal.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>

namespace meshplug::integration {

using namespace harness;  // the process harness is this package's vocabulary
namespace {

constexpr milliseconds kStart(20000);

std::string Str(int n) { return std::to_string(n); }

// Services and workloads of the scenario with the ports this run got.
std::string MeshManifest(int httpbin_port, const std::string& auth_host, int auth_port) {
  return R"(# Generated for this run: the reference scenario's services, with the ports the
# processes got (the Host header ports stay 14001 and 8079).
apiVersion: v1
kind: Service
metadata: {name: httpbin, namespace: httpbin, labels: {app: httpbin}}
spec:
  ports: [{name: http, port: 14001, targetPort: )" + Str(httpbin_port) + R"(, protocol: http}]
  selector: {app: httpbin}
---
apiVersion: v1
kind: Service
metadata: {name: curl, namespace: curl, labels: {app: curl}}
spec:
  ports: [{name: http, port: 80, protocol: http}]
  selector: {app: curl}
---
# The external auth service has no agent: its workload is declared, and its endpoint is
# the service itself.
apiVersion: v1
kind: Service
metadata: {name: ext-auth, namespace: auth}
spec:
  ports: [{name: http, port: 8079, protocol: http}]
  selector: {app: ext-auth}
---
apiVersion: meshplug.io/v1
kind: Workload
metadata: {name: ext-auth-1, namespace: auth, labels: {app: ext-auth}}
spec: {address: )" + auth_host + R"(, inboundPort: )" + Str(auth_port) + R"(}
)";
}

}  // namespace

// Intercepted: the agents' fixed ports in their namespaces, and the namespaces' prefix.
constexpr int kOutbound = 15001, kInbound = 15003, kAdmin = 15000, kDns = 15053;
constexpr const char* kNamespacePrefix = "mp-mesh-";

ReferenceScenario::ReferenceScenario(std::string dir, std::function<void(const std::string&)> say, bool intercepted,
                                     std::string store)
    : dir_(std::move(dir)),
      say_(std::move(say)),
      net_(intercepted ? std::make_unique<WorkloadNetwork>(kNamespacePrefix) : nullptr),
      store_(std::move(store)),
      cp_(dir_, {"--debounce_ms", "20"}) {
  if (!store_.empty()) {
    cp_.UseStore(store_);
    std::filesystem::create_directories(dir_ + "/replica");
    replica_ = std::make_unique<harness::ControlPlaneProcess>(dir_ + "/replica", std::vector<std::string>{"--debounce_ms", "20"});
    replica_->UseStore(store_);
  }
  agents_.push_back(ScenarioAgent{"curl-1", "curl", "curl", "", {}});
  agents_.push_back(ScenarioAgent{"httpbin-1", "httpbin", "httpbin", "", {}});
}

ReferenceScenario::~ReferenceScenario() {
  for (auto& a : agents_) a.running.process.reset();
  httpbin_.reset();
  auth_.reset();
  cp_.Stop();
}

void ReferenceScenario::Say(const std::string& line) const {
  if (say_) say_(line);
}

std::string ReferenceScenario::StartControlPlane() {
  // A restart takes the same port: the agents know the control plane by its address.
  if (auto err = cp_.Start(); !err.empty()) return err;
  Say("control plane listening on " + cp_.address() + " (TLS; store " + (store_.empty() ? dir_ + "/store.db" : store_) +
      ", meshctl credentials " + cp_.config_path() + ")");
  if (!replica_) return "";
  if (!replica_->running()) {
    if (auto err = replica_->Start(); !err.empty()) return err;
    Say("second control-plane replica listening on " + replica_->address());
  }
  cp_.SetAgentAddresses(cp_.address() + "," + replica_->address());
  return "";
}

std::vector<std::string> ReferenceScenario::In(const std::string& name, std::vector<std::string> argv) const {
  return net_ ? net_->In(name, std::move(argv)) : argv;
}

std::string ReferenceScenario::NodeHost() const { return net_ ? WorkloadNetwork::kNodeAddress : "127.0.0.1"; }

std::string ReferenceScenario::StartAuth() {
  const std::string host = NodeHost();
  auth_ = Process::Start(
      In("node", {"/usr/bin/python3", "integration/ext_auth.py", "--host", host, "--port", Str(auth_port_)}),
      dir_ + "/ext-auth.log");
  auto line = auth_ ? auth_->WaitForLog("ext-auth: listening on " + host + ":", kStart) : std::nullopt;
  if (!line) return "ext-auth did not start; see " + dir_ + "/ext-auth.log";
  auth_port_ = PortAfter(*line, "listening on " + host + ":");
  return "";
}

void ReferenceScenario::StopAuth() {
  auth_.reset();
  Say("ext-auth stopped");
}

std::string ReferenceScenario::StartAgent(ScenarioAgent& a) {
  // The first start joins with a token; restarts use the saved identity.
  if (a.bootstrap.empty()) {
    std::string error;
    a.bootstrap = cp_.JoinBootstrap(a.ns, a.name, a.app, &error);
    if (a.bootstrap.empty()) return error;
  }
  harness::AgentRun run;
  // Restarts keep the ports, as a pod's sidecar would (0 the first time: the system's pick).
  run.flags = {"--snapshot_cache=" + dir_ + "/" + a.name + ".snapshot", "--outbound_port=" + Str(a.running.outbound),
               "--inbound_port=" + Str(a.running.inbound), "--admin_port=" + Str(a.running.admin)};
  if (net_) {
    // The pod's address, every interface, and DNS for the app.
    run.wrapper = net_->In(a.name, {});
    run.flags.insert(run.flags.end(), {"--address=" + net_->Address(a.name), "--bind_address=0.0.0.0",
                                       "--outbound_port=" + Str(kOutbound), "--inbound_port=" + Str(kInbound),
                                       "--admin_port=" + Str(kAdmin), "--dns_port=" + Str(kDns),
                                       std::string("--dns_upstream=") + WorkloadNetwork::kNodeAddress});
  }
  std::string error;
  auto started = harness::StartAgentWithBootstrap(a.bootstrap, dir_, a.name, "app=" + a.app, &error, run);
  if (!started) return error;
  a.running = *std::move(started);
  if (net_) {
    Say("agent " + a.ns + "/" + a.name + " in its network namespace at " + net_->Address(a.name) + ", traffic intercepted");
  } else {
    Say("agent " + a.ns + "/" + a.name + ": outbound 127.0.0.1:" + Str(a.running.outbound) + ", inbound " +
        Str(a.running.inbound) + ", admin " + Str(a.running.admin));
  }
  return "";
}

ScenarioAgent& ReferenceScenario::Agent(const std::string& name) {
  for (auto& a : agents_) {
    if (a.name == name) return a;
  }
  return agents_.front();
}

std::string ReferenceScenario::Start() {
  if (net_) {
    RemoveStaleNamespaces(kNamespacePrefix);
    if (auto err = net_->Start(); !err.empty()) return err;
    for (const auto& a : agents_) {
      if (auto err = net_->AddWorkload(a.name); !err.empty()) return err;
      // As an init container does, before anything runs in the pod. The agent runs as root
      // (uid 0), whose connections the rules let out; so do httpbin and ext-auth, which only
      // answer; curl, the one app that calls out, runs as uid 1000 (AsCurlApp).
      auto r = Run(In(a.name, InterceptCommand("install", std::string(WorkloadNetwork::kNodeAddress) + "/32")));
      if (r.exit_code != 0) return "meshplug-intercept install for " + a.name + ": " + r.err;
    }
    cp_.Place(net_->In("node", {}), WorkloadNetwork::kNodeAddress);
  }
  if (auto err = StartControlPlane(); !err.empty()) return err;
  if (auto err = StartAuth(); !err.empty()) return err;
  // Intercepted, httpbin has its namespace to itself: the article's port.
  httpbin_ = Process::Start(In("httpbin-1", {"/usr/bin/gunicorn", "--bind", net_ ? "127.0.0.1:14001" : "127.0.0.1:0",
                                             "--workers", "1", "httpbin:app"}),
                            dir_ + "/httpbin.log");
  auto line = httpbin_ ? httpbin_->WaitForLog("Listening at: http://127.0.0.1:", kStart) : std::nullopt;
  if (!line) return "httpbin (gunicorn) did not start; see " + dir_ + "/httpbin.log";
  httpbin_port_ = PortAfter(*line, "Listening at: http://127.0.0.1:");
  Say("httpbin (gunicorn) on 127.0.0.1:" + Str(httpbin_port_) + (net_ ? " in its namespace" : "") + ", ext-auth on " +
      NodeHost() + ":" + Str(auth_port_));

  if (auto r = Apply("integration/scenario/00-namespaces.yaml"); r.exit_code != 0) return r.err;
  {
    std::ofstream(dir_ + "/mesh.yaml") << MeshManifest(httpbin_port_, NodeHost(), auth_port_);
  }
  if (auto r = Apply(dir_ + "/mesh.yaml"); r.exit_code != 0) return r.err;
  for (auto& a : agents_) {
    if (auto err = StartAgent(a); !err.empty()) return err;
  }
  // Ready when curl reaches httpbin through both agents.
  if (!Eventually([&] { return Curl("/get") == 200; }, milliseconds(30000))) {
    return "curl → httpbin through the agents did not work within 30 s; logs in " + dir_;
  }
  return "";
}

RunResult ReferenceScenario::Meshctl(std::vector<std::string> args, std::string_view input) {
  return (cp_.running() || !replica_ ? cp_ : *replica_).Meshctl(std::move(args), input);
}

RunResult ReferenceScenario::Apply(const std::string& file) {
  auto r = Meshctl({"apply", "-f", file});
  Say("$ meshctl apply -f " + file + "\n" + r.out + r.err);
  return r;
}

namespace {

// argv as a POSIX shell line: words with anything special in single quotes.
std::string ShellWords(const std::vector<std::string>& argv) {
  std::string line;
  for (const auto& a : argv) {
    const bool plain = !a.empty() && a.find_first_of(" '\"%\\$|&;<>()*?{}`!#~\t\n") == std::string::npos;
    std::string quoted = "'";
    for (char c : a) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    line += (line.empty() ? "" : " ") + (plain ? a : quoted + "'");
  }
  return line;
}

}  // namespace

std::vector<std::string> ReferenceScenario::AsApp(std::vector<std::string> argv) const {
  return net_ ? AsAppUser(std::move(argv)) : argv;
}

std::vector<std::string> ReferenceScenario::CurlTo(const std::string& path, std::vector<std::string> argv) {
  // Intercepted, exactly the article's form; else through the curl agent as a proxy.
  if (net_) {
    argv.push_back("httpbin.httpbin:14001" + path);
  } else {
    argv.insert(argv.end(), {"-x", "http://127.0.0.1:" + Str(Agent("curl-1").running.outbound),
                             "http://httpbin.httpbin:14001" + path});
  }
  return argv;
}

RunResult ReferenceScenario::AsCurlApp(std::vector<std::string> argv) { return Run(In("curl-1", AsApp(std::move(argv)))); }

std::string ReferenceScenario::CommandLine(const std::string& name, const std::vector<std::string>& argv) const {
  return ShellWords(In(name, argv));
}

std::string ReferenceScenario::CurlCommandLine(const std::string& path) {
  return CommandLine("curl-1", AsApp(CurlTo(path, {"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}\\n"})));
}

int ReferenceScenario::Curl(const std::string& path, std::string* body) {
  // --path-as-is: the path goes out exactly as given (curl would remove dot segments).
  auto r = AsCurlApp(CurlTo(path, {"/usr/bin/curl", "-s", "--path-as-is", "--max-time", "10", "-o",
                                   body ? "-" : "/dev/null", "-w", "\n%{http_code}"}));
  const size_t nl = r.out.rfind('\n');
  if (body) *body = r.out.substr(0, nl == std::string::npos ? 0 : nl);
  return nl == std::string::npos ? 0 : std::atoi(r.out.c_str() + nl + 1);
}

std::string ReferenceScenario::AdminTokenFile(const ScenarioAgent& a) const { return dir_ + "/" + a.name + ".admin-token"; }

std::string ReferenceScenario::AgentAdmin(const std::string& agent, const std::string& path) {
  ScenarioAgent& a = Agent(agent);
  std::string token;
  std::ifstream(AdminTokenFile(a)) >> token;
  auto r = Run(In(a.name, {"/usr/bin/curl", "-s", "--max-time", "5", "-H", "Authorization: Bearer " + token,
                           "http://127.0.0.1:" + Str(a.running.admin) + path}));
  return r.out;
}

std::vector<std::string> ReferenceScenario::AgentChain(const std::string& agent, const std::string& chain) {
  std::vector<std::string> out;
  try {
    for (const auto& m : YAML::Load(AgentAdmin(agent, "/config_dump"))["chains"][chain]) out.push_back(m.as<std::string>());
  } catch (const YAML::Exception&) {
  }
  return out;
}

void ReferenceScenario::KillControlPlane() {
  cp_.Kill();
  Say("control plane killed (SIGKILL)");
}

std::string ReferenceScenario::RestartAgent(const std::string& agent) {
  ScenarioAgent& a = Agent(agent);
  a.running.process.reset();  // SIGTERM: drains and exits
  Say("agent " + a.ns + "/" + a.name + " stopped");
  return StartAgent(a);
}

}  // namespace meshplug::integration
