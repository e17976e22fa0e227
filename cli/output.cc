#include "cli/output.h"

#include <cstdio>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <sstream>

#include "common/log.h"
#include "common/strings.h"
#include "resources/kinds.h"
#include "resources/object.h"
#include "meshplug/v1/resources.pb.h"

namespace meshplug::cli {
namespace {

namespace mv1 = meshplug::mesh::v1;
using google::protobuf::Message;
using google::protobuf::Value;

Value ToValue(const Message& msg) {
  std::string json;
  google::protobuf::util::JsonPrintOptions opts;
  (void)google::protobuf::util::MessageToJsonString(msg, &json, opts);
  Value value;
  (void)google::protobuf::util::JsonStringToMessage(json, &value);
  return value;
}

Value ListValue(const Objects& objects) {
  Value list;
  auto& fields = *list.mutable_struct_value()->mutable_fields();
  fields["apiVersion"].set_string_value("v1");
  fields["kind"].set_string_value("List");
  auto* items = fields["items"].mutable_list_value();
  for (const auto& o : objects) *items->add_values() = ToValue(*o);
  return list;
}

Value Document(const Objects& objects, bool as_list) {
  return as_list || objects.size() != 1 ? ListValue(objects) : ToValue(*objects.front());
}

// Strings that YAML would read back as something else are quoted.
bool NeedsQuotes(const std::string& s) {
  if (s.empty()) return true;
  static const char* kWords[] = {"true", "false", "null", "~", "yes", "no", "on", "off"};
  std::string lower = s;
  std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
  for (const char* w : kWords) {
    if (lower == w) return true;
  }
  char* end = nullptr;
  std::strtod(s.c_str(), &end);
  return end != s.c_str() && *end == '\0';
}

// A literal block (`|`) reads back exactly only a text that ends in exactly one line
// break, does not start with a space or a line break (those need indicators yaml-cpp does
// not write) and holds only printable characters, tabs and line breaks. Other text is
// written double-quoted, with escapes, so that `get -o yaml` applies back unchanged.
bool FitsLiteralBlock(const std::string& s) {
  if (s.size() < 2 || s.back() != '\n' || s[s.size() - 2] == '\n' || s[0] == ' ' || s[0] == '\n') return false;
  return std::none_of(s.begin(), s.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f;
  });
}

// Keys in a stable order: apiVersion, kind, metadata, spec, status, then by name.
std::vector<std::string> OrderedKeys(const google::protobuf::Struct& s) {
  std::vector<std::string> keys;
  for (const auto& [k, _] : s.fields()) keys.push_back(k);
  auto rank = [](const std::string& k) {
    static const char* kFirst[] = {"apiVersion", "kind", "metadata", "spec", "status"};
    for (int i = 0; i < 5; ++i) {
      if (k == kFirst[i]) return i;
    }
    return 5;
  };
  std::sort(keys.begin(), keys.end(), [&](const std::string& a, const std::string& b) {
    return rank(a) != rank(b) ? rank(a) < rank(b) : a < b;
  });
  return keys;
}

std::string Number(double d) {
  if (d == static_cast<double>(static_cast<int64_t>(d))) return std::to_string(static_cast<int64_t>(d));
  std::ostringstream out;
  out.precision(17);
  out << d;
  return out.str();
}

void EmitJson(std::string& out, const Value& v, int indent) {
  const std::string pad(indent + 2, ' ');
  switch (v.kind_case()) {
    case Value::kStructValue: {
      const auto keys = OrderedKeys(v.struct_value());
      if (keys.empty()) {
        out += "{}";
        break;
      }
      out += "{\n";
      for (size_t i = 0; i < keys.size(); ++i) {
        out += pad + JsonQuote(keys[i]) + ": ";
        EmitJson(out, v.struct_value().fields().at(keys[i]), indent + 2);
        out += i + 1 < keys.size() ? ",\n" : "\n";
      }
      out += std::string(indent, ' ') + "}";
      break;
    }
    case Value::kListValue: {
      const auto& values = v.list_value().values();
      if (values.empty()) {
        out += "[]";
        break;
      }
      out += "[\n";
      for (int i = 0; i < values.size(); ++i) {
        out += pad;
        EmitJson(out, values[i], indent + 2);
        out += i + 1 < values.size() ? ",\n" : "\n";
      }
      out += std::string(indent, ' ') + "]";
      break;
    }
    case Value::kStringValue: out += JsonQuote(v.string_value()); break;
    case Value::kNumberValue: out += Number(v.number_value()); break;
    case Value::kBoolValue: out += v.bool_value() ? "true" : "false"; break;
    default: out += "null";
  }
}

void Emit(YAML::Emitter& out, const Value& v) {
  switch (v.kind_case()) {
    case Value::kStructValue: {
      const auto keys = OrderedKeys(v.struct_value());
      if (keys.empty()) {
        out << YAML::Flow << YAML::BeginMap << YAML::EndMap;
        break;
      }
      out << YAML::BeginMap;
      for (const auto& k : keys) {
        out << YAML::Key << k << YAML::Value;
        Emit(out, v.struct_value().fields().at(k));
      }
      out << YAML::EndMap;
      break;
    }
    case Value::kListValue:
      if (v.list_value().values().empty()) out << YAML::Flow;
      out << YAML::BeginSeq;
      for (const auto& item : v.list_value().values()) Emit(out, item);
      out << YAML::EndSeq;
      break;
    case Value::kStringValue: {
      const std::string& s = v.string_value();
      if (FitsLiteralBlock(s)) {
        out << YAML::Literal << s;
      } else if (s.find('\n') != std::string::npos || NeedsQuotes(s)) {
        out << YAML::DoubleQuoted << s;
      } else {
        out << s;
      }
      break;
    }
    case Value::kNumberValue:
      out << Number(v.number_value());
      break;
    case Value::kBoolValue:
      out << (v.bool_value() ? "true" : "false");
      break;
    default:
      out << YAML::Null;
  }
}

std::string PortsOf(const mv1::Service& s) {
  std::vector<std::string> ports;
  for (const auto& p : s.spec().ports()) {
    ports.push_back(Cat(p.port(), "/", p.protocol().empty() ? "http" : p.protocol()));
  }
  return Join(ports, ",");
}

std::string ChainsOf(const mv1::PluginChain& pc) {
  std::vector<std::string> chains;
  for (const auto& c : pc.spec().chains()) chains.push_back(Cat(c.name(), ":", Join(c.plugins(), "+")));
  return Join(chains, ",");
}

std::string DestinationsOf(const mv1::PluginConfig& pc) {
  std::vector<std::string> refs;
  for (const auto& r : pc.spec().destination_refs()) refs.push_back(Cat(r.name(), ".", r.namespace_()));
  return Join(refs, ",");
}

// Extra columns (header, value) per kind, between NAME and AGE.
std::vector<std::pair<std::string, std::string>> Columns(const Message& obj) {
  const resources::KindInfo* kind = resources::FindKindByMessage(obj.GetDescriptor()->full_name());
  if (kind == nullptr) return {};
  switch (kind->id) {
    case resources::Kind::kNamespace:
      return {};
    case resources::Kind::kService: {
      const auto& s = static_cast<const mv1::Service&>(obj);
      std::vector<std::string> sel;
      for (const auto& [k, v] : s.spec().selector()) sel.push_back(k + "=" + v);
      std::sort(sel.begin(), sel.end());
      return {{"PORTS", PortsOf(s)}, {"SELECTOR", Join(sel, ",")}};
    }
    case resources::Kind::kWorkload: {
      const auto& w = static_cast<const mv1::Workload&>(obj);
      return {{"ADDRESS", w.spec().address()},
              {"SERVICE-ACCOUNT", w.spec().service_account()},
              {"CONNECTED", w.status().connected() ? "true" : "false"}};
    }
    case resources::Kind::kMeshConfig: {
      const auto& m = static_cast<const mv1::MeshConfig&>(obj);
      return {{"PLUGIN-POLICY", m.spec().feature_flags().enable_plugin_policy() ? "enabled" : "disabled"}};
    }
    case resources::Kind::kPlugin: {
      const auto& p = static_cast<const mv1::Plugin&>(obj);
      return {{"PRIORITY", std::to_string(p.spec().priority())}, {"COMPILE", p.status().compile()}};
    }
    case resources::Kind::kPluginChain:
      return {{"CHAINS", ChainsOf(static_cast<const mv1::PluginChain&>(obj))}};
    case resources::Kind::kPluginConfig: {
      const auto& c = static_cast<const mv1::PluginConfig&>(obj);
      return {{"PLUGIN", c.spec().plugin()}, {"DESTINATIONS", DestinationsOf(c)}};
    }
    case resources::Kind::kHTTPRoute: {
      const auto& r = static_cast<const mv1::HTTPRoute&>(obj);
      std::vector<std::string> parents;
      for (const auto& p : r.spec().parent_refs()) parents.push_back(p.port() ? Cat(p.name(), ":", p.port()) : p.name());
      return {{"PARENTS", Join(parents, ",")}, {"RULES", std::to_string(r.spec().rules_size())}};
    }
  }
  return {};
}


std::string Milliseconds(double seconds) {
  if (seconds < 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2fms", seconds * 1000);
  return buf;
}

}  // namespace

std::string ToYaml(const Objects& objects, bool as_list) {
  YAML::Emitter out;
  out.SetIndent(2);
  Emit(out, Document(objects, as_list));
  std::string yaml = out.c_str();
  if (yaml.empty() || yaml.back() != '\n') yaml += '\n';  // a literal block ends with one
  return yaml;
}

std::string ToJson(const Objects& objects, bool as_list) {
  std::string json;
  EmitJson(json, Document(objects, as_list), 0);
  return json + "\n";
}

std::string Age(const std::string& rfc3339) {
  std::tm tm{};
  if (strptime(rfc3339.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm) == nullptr) return "<unknown>";
  const auto created = std::chrono::system_clock::from_time_t(timegm(&tm));
  const auto s = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now() - created).count();
  if (s < 120) return Cat(std::max<int64_t>(s, 0), "s");
  if (s < 7200) return Cat(s / 60, "m");
  if (s < 172800) return Cat(s / 3600, "h");
  return Cat(s / 86400, "d");
}

std::string RenderTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(rows.front().size(), 0);
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 3, ' ');
    }
    out += line + "\n";
  }
  return out;
}

std::string ToTable(const Objects& objects, bool show_namespace) {
  if (objects.empty()) return "";
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> header;
  if (show_namespace) header.push_back("NAMESPACE");
  header.push_back("NAME");
  for (const auto& [h, _] : Columns(*objects.front())) header.push_back(h);
  header.push_back("AGE");
  rows.push_back(header);
  for (const auto& o : objects) {
    const auto& meta = resources::Meta(*o);
    std::vector<std::string> row;
    if (show_namespace) row.push_back(meta.namespace_());
    row.push_back(meta.name());
    for (const auto& [_, v] : Columns(*o)) row.push_back(v.empty() ? "<none>" : v);
    row.push_back(Age(meta.creation_timestamp()));
    rows.push_back(row);
  }
  return RenderTable(rows);
}

std::string ProxyStatusTable(const v1::ProxyStatusResponse& resp) {
  std::vector<std::vector<std::string>> rows = {
      {"AGENT", "CONNECTED", "PROTOCOL", "IDENTITY", "CERT EXPIRES", "SNAPSHOT", "SYNCED", "CONTROL PLANE", "LAST NACK"}};
  for (const auto& a : resp.agents()) {
    int acked = 0;
    for (const auto& t : a.types()) acked += !t.sent_version().empty() && t.sent_version() == t.acked_version();
    const std::string synced = Cat(acked, "/", a.types_size());
    const std::string nack = a.last_nack().empty() ? "<none>" : Cat(a.last_nack_time(), " ", a.last_nack());
    rows.push_back({a.agent(), a.connected() ? "true" : "false", a.protocol(),
                    a.identity().empty() ? "<none>" : a.identity(),
                    a.certificate_expiry().empty() ? "<none>" : a.certificate_expiry(), a.snapshot_version().empty() ? "<none>" : a.snapshot_version(), synced,
                    a.control_plane().empty() ? "<none>" : a.control_plane(), nack});
  }
  return RenderTable(rows);
}

std::string CaStatusText(const v1::CaStatus& status) {
  std::string out = Cat("phase: ", status.phase(), "\nsigner: ", status.signer_key_id(), "\n");
  std::vector<std::vector<std::string>> rows = {{"ROLE", "KEY ID", "SUBJECT", "EXPIRES"}};
  for (const auto& ca : status.cas()) rows.push_back({ca.role(), ca.key_id(), ca.subject(), ca.expires()});
  out += RenderTable(rows);
  if (status.agents_not_on_signer_size() > 0) {
    out += Cat("agents whose certificate is not from the signer: ", status.agents_not_on_signer_size(), "\n");
    for (const auto& agent : status.agents_not_on_signer()) out += Cat("  ", agent, "\n");
  }
  if (status.agents_not_synced_size() > 0) {
    out += Cat("connected agents that have not ACKed their latest snapshot: ", status.agents_not_synced_size(), "\n");
    for (const auto& agent : status.agents_not_synced()) out += Cat("  ", agent, "\n");
  }
  return out;
}

std::string StatTable(const std::vector<traffic::Row>& rows, traffic::GroupBy by, double window_seconds) {
  using traffic::GroupBy;
  std::vector<std::string> header = {"NAMESPACE"};
  if (by == GroupBy::kService || by == GroupBy::kRoute) header.push_back("SERVICE");
  if (by == GroupBy::kWorkload) header.push_back("WORKLOAD");
  if (by == GroupBy::kRoute) header.push_back("ROUTE");
  for (const char* h : {"REQUESTS", "SUCCESS", "RPS", "LATENCY_P50", "LATENCY_P95", "LATENCY_P99"}) header.push_back(h);
  std::vector<std::vector<std::string>> cells = {header};
  for (const traffic::Row& r : rows) {
    std::vector<std::string> line = r.key;
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f", r.requests);
    line.push_back(buf);
    std::snprintf(buf, sizeof buf, "%.2f%%", r.requests > 0 ? 100 * r.successes / r.requests : 0.0);
    line.push_back(r.requests > 0 ? buf : "-");
    std::snprintf(buf, sizeof buf, "%.2f", window_seconds > 0 ? r.requests / window_seconds : 0.0);
    line.push_back(window_seconds > 0 ? buf : "-");
    for (double q : {r.p50, r.p95, r.p99}) line.push_back(Milliseconds(q));
    cells.push_back(std::move(line));
  }
  return RenderTable(cells);
}

}  // namespace meshplug::cli
