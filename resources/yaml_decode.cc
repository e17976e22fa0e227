#include "resources/yaml_decode.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/struct.pb.h>

#include <charconv>
#include <cmath>
#include <limits>

#include "common/strings.h"

namespace meshplug::resources {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

absl::Status Error(const std::string& path, const YAML::Node& node, std::string_view reason) {
  return absl::InvalidArgumentError(Cat(path, LineOf(node), ": ", reason));
}

std::string Join(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : Cat(path, ".", key);
}

std::string TypeName(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: return "an object";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Null: return "null";
    default: return Cat("\"", node.Scalar(), "\"");
  }
}

// A plain (unquoted) scalar may be a number, bool or null; a quoted one is a string.
bool Quoted(const YAML::Node& node) { return node.Tag() == "!"; }

bool ParseBool(const YAML::Node& node, bool* out) {
  if (!node.IsScalar() || Quoted(node)) return false;
  if (node.Scalar() == "true") return *out = true, true;
  if (node.Scalar() == "false") return *out = false, true;
  return false;
}

bool ParseInt(const std::string& s, int64_t* out) {
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, *out);
  return ec == std::errc() && ptr == end && !s.empty();
}

bool ParseDouble(const std::string& s, double* out) {
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, *out);
  return ec == std::errc() && ptr == end && !s.empty() && std::isfinite(*out);
}

absl::Status DecodeValue(const YAML::Node& node, google::protobuf::Value& out,
                         const std::string& path);

absl::Status DecodeStruct(const YAML::Node& node, google::protobuf::Struct& out,
                          const std::string& path) {
  if (!node.IsMap()) return Error(path, node, Cat("must be an object, got ", TypeName(node)));
  for (const auto& kv : node) {
    if (!kv.first.IsScalar()) return Error(path, kv.first, "keys must be strings");
    const std::string key = kv.first.Scalar();
    if (auto st = DecodeValue(kv.second, (*out.mutable_fields())[key], Join(path, key)); !st.ok()) {
      return st;
    }
  }
  return absl::OkStatus();
}

absl::Status DecodeValue(const YAML::Node& node, google::protobuf::Value& out,
                         const std::string& path) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      out.set_null_value(google::protobuf::NULL_VALUE);
      return absl::OkStatus();
    case YAML::NodeType::Map:
      return DecodeStruct(node, *out.mutable_struct_value(), path);
    case YAML::NodeType::Sequence: {
      auto* list = out.mutable_list_value();
      for (size_t i = 0; i < node.size(); ++i) {
        if (auto st = DecodeValue(node[i], *list->add_values(), Cat(path, "[", i, "]"));
            !st.ok()) {
          return st;
        }
      }
      return absl::OkStatus();
    }
    case YAML::NodeType::Scalar:
      break;
  }
  bool b = false;
  double d = 0;
  if (ParseBool(node, &b)) {
    out.set_bool_value(b);
  } else if (!Quoted(node) && (node.Scalar() == "null" || node.Scalar() == "~")) {
    out.set_null_value(google::protobuf::NULL_VALUE);
  } else if (!Quoted(node) && ParseDouble(node.Scalar(), &d)) {
    out.set_number_value(d);
  } else {
    out.set_string_value(node.Scalar());
  }
  return absl::OkStatus();
}

absl::Status DecodeMessage(const YAML::Node& node, Message& msg, const std::string& path);

// One value of `field` (an element, if repeated) from `node` into `msg`.
absl::Status DecodeSingle(const YAML::Node& node, Message& msg, const FieldDescriptor* field,
                          const std::string& path) {
  const Reflection* r = msg.GetReflection();
  const bool rep = field->is_repeated();
  if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
    Message* sub = rep ? r->AddMessage(&msg, field) : r->MutableMessage(&msg, field);
    return DecodeMessage(node, *sub, path);
  }
  if (!node.IsScalar()) {
    return Error(path, node, Cat("must be a ", field->cpp_type_name(), ", got ", TypeName(node)));
  }
  const std::string& s = node.Scalar();
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING:
      rep ? r->AddString(&msg, field, s) : r->SetString(&msg, field, s);
      return absl::OkStatus();
    case FieldDescriptor::CPPTYPE_BOOL: {
      bool b = false;
      if (!ParseBool(node, &b)) return Error(path, node, Cat("must be true or false, got ", TypeName(node)));
      rep ? r->AddBool(&msg, field, b) : r->SetBool(&msg, field, b);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64:
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64: {
      int64_t v = 0;
      const bool is32 = field->cpp_type() == FieldDescriptor::CPPTYPE_INT32 ||
                        field->cpp_type() == FieldDescriptor::CPPTYPE_UINT32;
      // 64-bit integers are strings in protobuf's JSON (resourceVersion: "12"), so a quoted
      // one reads back; smaller ones must be plain numbers.
      if ((Quoted(node) && is32) || !ParseInt(s, &v)) {
        return Error(path, node, Cat("must be an integer, got ", TypeName(node)));
      }
      const bool is_unsigned = field->cpp_type() == FieldDescriptor::CPPTYPE_UINT32 ||
                               field->cpp_type() == FieldDescriptor::CPPTYPE_UINT64;
      const int64_t lo = is_unsigned ? 0 : (is32 ? std::numeric_limits<int32_t>::min() : INT64_MIN);
      const int64_t hi = is32 ? (is_unsigned ? int64_t{UINT32_MAX} : int64_t{INT32_MAX}) : INT64_MAX;
      if (v < lo || v > hi) return Error(path, node, Cat(s, " is out of range"));
      switch (field->cpp_type()) {
        case FieldDescriptor::CPPTYPE_INT32:
          rep ? r->AddInt32(&msg, field, static_cast<int32_t>(v)) : r->SetInt32(&msg, field, static_cast<int32_t>(v));
          break;
        case FieldDescriptor::CPPTYPE_UINT32:
          rep ? r->AddUInt32(&msg, field, static_cast<uint32_t>(v)) : r->SetUInt32(&msg, field, static_cast<uint32_t>(v));
          break;
        case FieldDescriptor::CPPTYPE_UINT64:
          rep ? r->AddUInt64(&msg, field, static_cast<uint64_t>(v)) : r->SetUInt64(&msg, field, static_cast<uint64_t>(v));
          break;
        default:
          rep ? r->AddInt64(&msg, field, v) : r->SetInt64(&msg, field, v);
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT: {
      double d = 0;
      if (Quoted(node) || !ParseDouble(s, &d)) {
        return Error(path, node, Cat("must be a number, got ", TypeName(node)));
      }
      if (field->cpp_type() == FieldDescriptor::CPPTYPE_FLOAT) {
        rep ? r->AddFloat(&msg, field, static_cast<float>(d)) : r->SetFloat(&msg, field, static_cast<float>(d));
      } else {
        rep ? r->AddDouble(&msg, field, d) : r->SetDouble(&msg, field, d);
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_ENUM: {
      const auto* value = field->enum_type()->FindValueByName(s);
      if (value == nullptr) return Error(path, node, Cat("unknown value ", TypeName(node)));
      rep ? r->AddEnum(&msg, field, value) : r->SetEnum(&msg, field, value);
      return absl::OkStatus();
    }
    default:
      return Error(path, node, "unsupported field type");
  }
}

absl::Status DecodeMap(const YAML::Node& node, Message& msg, const FieldDescriptor* field,
                       const std::string& path) {
  if (!node.IsMap()) return Error(path, node, Cat("must be an object, got ", TypeName(node)));
  const auto* entry_desc = field->message_type();
  const auto* key_field = entry_desc->map_key();
  const auto* value_field = entry_desc->map_value();
  for (const auto& kv : node) {
    if (!kv.first.IsScalar()) return Error(path, kv.first, "keys must be strings");
    const std::string key = kv.first.Scalar();
    Message* entry = msg.GetReflection()->AddMessage(&msg, field);
    entry->GetReflection()->SetString(entry, key_field, key);
    if (auto st = DecodeSingle(kv.second, *entry, value_field, Join(path, key)); !st.ok()) return st;
  }
  return absl::OkStatus();
}

const FieldDescriptor* FindField(const google::protobuf::Descriptor* desc, const std::string& key) {
  for (int i = 0; i < desc->field_count(); ++i) {
    if (desc->field(i)->json_name() == key) return desc->field(i);
  }
  return nullptr;
}

absl::Status DecodeMessage(const YAML::Node& node, Message& msg, const std::string& path) {
  const auto* desc = msg.GetDescriptor();
  if (desc->full_name() == google::protobuf::Struct::descriptor()->full_name()) {
    return DecodeStruct(node, static_cast<google::protobuf::Struct&>(msg), path);
  }
  if (desc->full_name() == google::protobuf::Value::descriptor()->full_name()) {
    return DecodeValue(node, static_cast<google::protobuf::Value&>(msg), path);
  }
  if (!node.IsMap()) return Error(path, node, Cat("must be an object, got ", TypeName(node)));
  for (const auto& kv : node) {
    if (!kv.first.IsScalar()) return Error(path, kv.first, "keys must be strings");
    const std::string key = kv.first.Scalar();
    const std::string field_path = Join(path, key);
    const FieldDescriptor* field = FindField(desc, key);
    if (field == nullptr) return Error(field_path, kv.first, "unknown field");
    const YAML::Node& value = kv.second;
    if (value.IsNull()) continue;  // `key:` with nothing = unset, as in Kubernetes
    absl::Status st;
    if (field->is_map()) {
      st = DecodeMap(value, msg, field, field_path);
    } else if (field->is_repeated()) {
      if (!value.IsSequence()) {
        return Error(field_path, value, Cat("must be a list, got ", TypeName(value)));
      }
      for (size_t i = 0; i < value.size() && st.ok(); ++i) {
        st = DecodeSingle(value[i], msg, field, Cat(field_path, "[", i, "]"));
      }
    } else {
      st = DecodeSingle(value, msg, field, field_path);
    }
    if (!st.ok()) return st;
  }
  return absl::OkStatus();
}

}  // namespace

std::string LineOf(const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  if (mark.is_null()) return "";
  return Cat(" (line ", mark.line + 1, ")");
}

absl::Status DecodeYaml(const YAML::Node& node, google::protobuf::Message& msg,
                        const std::string& path) {
  return DecodeMessage(node, msg, path);
}

}  // namespace meshplug::resources
