#include "control_plane/api/dashboard.h"

#include <google/protobuf/any.pb.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/util/json_util.h>

#include <cstdio>

#include "common/config_dump.h"
#include "common/strings.h"
#include "control_plane/xds/agent_registry.h"
#include "control_plane/xds/resources.h"
#include "net/http_client.h"

namespace meshplug::control_plane::api {
namespace {

using traffic::GroupBy;

std::string Number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

// An object's metadata and status as JSON; its spec (a PluginConfig's values) never.
std::string MetadataAndStatus(const google::protobuf::Any& any) {
  const std::string type = any.type_url().substr(any.type_url().rfind('/') + 1);
  const google::protobuf::Descriptor* d = google::protobuf::DescriptorPool::generated_pool()->FindMessageTypeByName(type);
  if (d == nullptr) return "";
  std::unique_ptr<google::protobuf::Message> m(google::protobuf::MessageFactory::generated_factory()->GetPrototype(d)->New());
  if (!any.UnpackTo(m.get())) return "";
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string out = Cat("{\"kind\": ", JsonQuote(d->name()));
  for (const char* part : {"metadata", "status"}) {
    const google::protobuf::FieldDescriptor* f = d->FindFieldByName(part);
    if (f == nullptr || f->type() != google::protobuf::FieldDescriptor::TYPE_MESSAGE) continue;
    std::string json;
    (void)google::protobuf::util::MessageToJsonString(m->GetReflection()->GetMessage(*m, f), &json, options);
    out += Cat(", ", JsonQuote(part), ": ", json);
  }
  return out + "}";
}

}  // namespace

std::string Dashboard::RowsJson(const std::vector<traffic::Row>& rows, GroupBy by) {
  std::vector<std::string> items;
  for (const traffic::Row& r : rows) {
    std::string who;
    if (by == GroupBy::kEdge) {
      who = Cat("\"src\": ", JsonQuote(Cat(r.key[0], "/", r.key[1])), ", \"dst\": ", JsonQuote(Cat(r.key[2], "/", r.key[3])));
    } else {
      who = Cat("\"namespace\": ", JsonQuote(r.key[0]), ", \"name\": ", JsonQuote(r.key.size() > 1 ? r.key[1] : ""));
    }
    items.push_back(Cat("{", who, ", \"requests\": ", Number(r.requests), ", \"successes\": ", Number(r.successes),
                        ", \"p50_ms\": ", Number(r.p50 * 1000), ", \"p99_ms\": ", Number(r.p99 * 1000), "}"));
  }
  return "[" + Join(items, ",\n  ") + "]";
}

Dashboard::Dashboard(std::function<std::vector<v1::AgentStatus>()> agents, const xds::ConfigWatcher& configs,
                     ResourceApi& resources)
    : agents_(std::move(agents)), configs_(configs), resources_(resources), reader_([this] { ReadWhileWatched(); }) {}

Dashboard::~Dashboard() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  changed_.notify_all();
  reader_.join();  // it stops between agents
}

Dashboard::Traffic Dashboard::ReadAgents() const {
  Traffic t;
  size_t read = 0;
  for (const v1::AgentStatus& a : agents_()) {
    if (stopping_.load()) break;
    if (!a.connected() || a.admin_address().empty() || read == kMaxAgentsRead) continue;
    ++read;
    absl::StatusOr<std::string> text = net::HttpGet(a.admin_address(), "/stats", std::chrono::seconds(1));
    if (!text.ok()) {
      // Not what answered: viewers see the agent, not another server's words.
      t.unreadable.push_back(Cat(a.agent(), " (", a.admin_address(), "): /stats could not be read"));
      continue;
    }
    traffic::AddAgentStats(*text, a.agent(), t.golden);
  }
  t.at = Clock::now();
  t.at_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::system_clock::now().time_since_epoch()).count();
  return t;
}

void Dashboard::ReadWhileWatched() {
  std::unique_lock lock(mu_);
  while (true) {
    changed_.wait(lock, [this] { return stopping_.load() || Clock::now() < watched_until_; });
    if (stopping_) return;
    lock.unlock();
    Traffic fresh = ReadAgents();
    lock.lock();
    traffic_ = std::move(fresh);
    changed_.notify_all();
    changed_.wait_for(lock, std::chrono::seconds(2), [this] { return stopping_.load() || refresh_asked_; });
    refresh_asked_ = false;
  }
}

std::string Dashboard::ResourcesJson() {
  std::vector<std::string> items;
  for (const char* kind : {"Plugin", "PluginChain", "PluginConfig"}) {
    v1::GetRequest req;
    req.set_kind(kind);
    req.set_all_namespaces(true);
    absl::StatusOr<v1::GetResponse> got = resources_.Get(req);
    if (!got.ok()) continue;
    for (const google::protobuf::Any& any : got->objects()) {
      if (std::string json = MetadataAndStatus(any); !json.empty()) items.push_back(std::move(json));
    }
  }
  return "[" + Join(items, ",\n  ") + "]";
}

std::string Dashboard::MeshJson() {
  const std::vector<v1::AgentStatus> agents = agents_();
  std::vector<std::string> agent_items;
  for (const v1::AgentStatus& a : agents) {
    bool synced = a.connected();
    for (const auto& t : a.types()) synced = synced && t.acked_version() == t.sent_version();
    std::string chains = "{}";
    if (!a.agent().ends_with(xds::kXdsClientSuffix)) {
      if (xds::Resources r = configs_.Get(a.agent())) chains = ChainsJson(xds::ToSnapshot(*r));
    }
    agent_items.push_back(Cat("{\"agent\": ", JsonQuote(a.agent()), ", \"connected\": ", a.connected() ? "true" : "false",
                              ", \"snapshot\": ", JsonQuote(a.snapshot_version()), ", \"synced\": ", synced ? "true" : "false",
                              ", \"last_nack\": ", JsonQuote(a.last_nack()), ", \"identity\": ", JsonQuote(a.identity()),
                              ", \"control_plane\": ", JsonQuote(a.control_plane()), ", \"chains\": ", chains, "}"));
  }
  const std::string resources = ResourcesJson();
  std::unique_lock lock(mu_);
  const Clock::time_point now = Clock::now();
  const bool first_look = now >= watched_until_;
  watched_until_ = now + std::chrono::seconds(10);
  refresh_asked_ = refresh_asked_ || first_look;
  changed_.notify_all();
  if (first_look) {
    changed_.wait_for(lock, std::chrono::milliseconds(1500), [&] { return stopping_.load() || traffic_.at >= now; });
  }
  const traffic::Golden& g = traffic_.golden;
  auto rows = [&g](GroupBy by, std::string_view direction) {
    return RowsJson(traffic::Aggregate(g.requests, g.buckets, by, direction, "", ""), by);
  };
  std::vector<std::string> unreadable;
  for (const std::string& u : traffic_.unreadable) unreadable.push_back(JsonQuote(u));
  return Cat("{\"read_at\": ", traffic_.at_unix_ms, ",\n\"edges\": ", rows(GroupBy::kEdge, "outbound"), ",\n\"services\": ", rows(GroupBy::kService, "inbound"),
             ",\n\"workloads\": ", rows(GroupBy::kWorkload, "inbound"),
             ",\n\"agents\": [", Join(agent_items, ",\n  "), "]",
             ",\n\"resources\": ", resources,
             ",\n\"unreadable\": [", Join(unreadable, ", "), "]}\n");
}

}  // namespace meshplug::control_plane::api
