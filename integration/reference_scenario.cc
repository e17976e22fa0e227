#include "integration/reference_scenario.h"

#include <signal.h>
#include <yaml-cpp/yaml.h>

#include <fstream>

namespace meshplug::integration {

using namespace harness;  // the process harness is this package's vocabulary
namespace {

constexpr milliseconds kStart(20000);

std::string Str(int n) { return std::to_string(n); }

// Services and workloads of the scenario with the ports this run got.
std::string MeshManifest(int httpbin_port, int auth_port) {
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
spec: {address: 127.0.0.1, inboundPort: )" + Str(auth_port) + R"(}
)";
}

}  // namespace

ReferenceScenario::ReferenceScenario(std::string dir, std::function<void(const std::string&)> say)
    : dir_(std::move(dir)), say_(std::move(say)), cp_(dir_, {"--debounce_ms", "20"}) {
  agents_.push_back(AgentProcess{"curl-1", "curl", "curl", nullptr, 0, 0, 0, 0, ""});
  agents_.push_back(AgentProcess{"httpbin-1", "httpbin", "httpbin", nullptr, 0, 0, 0, 0, ""});
}

ReferenceScenario::~ReferenceScenario() {
  for (auto& a : agents_) a.process.reset();
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
  Say("control plane listening on " + cp_.address() + " (TLS; store " + dir_ + "/store.db, meshctl credentials " +
      cp_.config_path() + ")");
  return "";
}

std::string ReferenceScenario::StartAuth() {
  auth_ = Process::Start({"/usr/bin/python3", "integration/ext_auth.py", "--port", Str(auth_port_)},
                         dir_ + "/ext-auth.log");
  auto line = auth_ ? auth_->WaitForLog("ext-auth: listening on 127.0.0.1:", kStart) : std::nullopt;
  if (!line) return "ext-auth did not start; see " + dir_ + "/ext-auth.log";
  auth_port_ = PortAfter(*line, "listening on 127.0.0.1:");
  return "";
}

void ReferenceScenario::StopAuth() {
  auth_.reset();
  Say("ext-auth stopped");
}

std::string ReferenceScenario::StartAgent(AgentProcess& a) {
  // The first start joins with a token; restarts use the saved identity.
  if (a.bootstrap.empty()) {
    std::string error;
    a.bootstrap = cp_.JoinBootstrap(a.ns, a.name, a.app, &error);
    if (a.bootstrap.empty()) return error;
  }
  a.process = Process::Start(
      {"agent/agent", "--bootstrap", a.bootstrap, "--labels", "app=" + a.app, "--address", "127.0.0.1",
       "--bind_address", "127.0.0.1", "--outbound_port", Str(a.outbound), "--inbound_port", Str(a.inbound),
       "--admin_port", Str(a.admin), "--workers", "1", "--snapshot_cache", dir_ + "/" + a.name + ".snapshot",
       "--identity_file", dir_ + "/" + a.name + ".identity.pem", "--admin_token_file", AdminTokenFile(a)},
      dir_ + "/" + a.name + "-" + Str(++a.starts) + ".log");
  auto line = a.process ? a.process->WaitForLog("agent: listening", kStart) : std::nullopt;
  if (!line) return "agent " + a.name + " did not start; see " + dir_ + "/" + a.name + "-" + Str(a.starts) + ".log";
  // Restarts keep the ports, as a pod's sidecar would.
  a.outbound = PortAfter(*line, "outbound=");
  a.inbound = PortAfter(*line, "inbound=");
  a.admin = PortAfter(*line, "admin=");
  Say("agent " + a.ns + "/" + a.name + ": outbound 127.0.0.1:" + Str(a.outbound) + ", inbound " + Str(a.inbound) +
      ", admin " + Str(a.admin));
  return "";
}

AgentProcess& ReferenceScenario::Agent(const std::string& name) {
  for (auto& a : agents_) {
    if (a.name == name) return a;
  }
  return agents_.front();
}

std::string ReferenceScenario::Start() {
  if (auto err = StartControlPlane(); !err.empty()) return err;
  if (auto err = StartAuth(); !err.empty()) return err;
  httpbin_ = Process::Start({"/usr/bin/gunicorn", "--bind", "127.0.0.1:0", "--workers", "1", "httpbin:app"},
                            dir_ + "/httpbin.log");
  auto line = httpbin_ ? httpbin_->WaitForLog("Listening at: http://127.0.0.1:", kStart) : std::nullopt;
  if (!line) return "httpbin (gunicorn) did not start; see " + dir_ + "/httpbin.log";
  httpbin_port_ = PortAfter(*line, "Listening at: http://127.0.0.1:");
  Say("httpbin (gunicorn) on 127.0.0.1:" + Str(httpbin_port_) + ", ext-auth on 127.0.0.1:" + Str(auth_port_));

  if (auto r = Apply("integration/scenario/00-namespaces.yaml"); r.exit_code != 0) return r.err;
  {
    std::ofstream(dir_ + "/mesh.yaml") << MeshManifest(httpbin_port_, auth_port_);
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
  return cp_.Meshctl(std::move(args), input);
}

RunResult ReferenceScenario::Apply(const std::string& file) {
  auto r = Meshctl({"apply", "-f", file});
  Say("$ meshctl apply -f " + file + "\n" + r.out + r.err);
  return r;
}

int ReferenceScenario::Curl(const std::string& path, std::string* body) {
  const auto& curl = Agent("curl-1");
  // --path-as-is: the path goes out exactly as given (curl would remove dot segments).
  auto r = Run({"/usr/bin/curl", "-s", "--path-as-is", "--max-time", "10", "-o", body ? "-" : "/dev/null", "-w", "\n%{http_code}",
                "-x", "http://127.0.0.1:" + Str(curl.outbound), "http://httpbin.httpbin:14001" + path});
  const size_t nl = r.out.rfind('\n');
  if (body) *body = r.out.substr(0, nl == std::string::npos ? 0 : nl);
  return nl == std::string::npos ? 0 : std::atoi(r.out.c_str() + nl + 1);
}

std::string ReferenceScenario::AdminTokenFile(const AgentProcess& a) const { return dir_ + "/" + a.name + ".admin-token"; }

std::string ReferenceScenario::AgentAdmin(const std::string& agent, const std::string& path) {
  AgentProcess& a = Agent(agent);
  std::string token;
  std::ifstream(AdminTokenFile(a)) >> token;
  auto r = Run({"/usr/bin/curl", "-s", "--max-time", "5", "-H", "Authorization: Bearer " + token,
                "http://127.0.0.1:" + Str(a.admin) + path});
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
  AgentProcess& a = Agent(agent);
  a.process.reset();  // SIGTERM: drains and exits
  Say("agent " + a.ns + "/" + a.name + " stopped");
  return StartAgent(a);
}

}  // namespace meshplug::integration
