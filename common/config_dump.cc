#include "common/config_dump.h"

#include <google/protobuf/util/json_util.h>

#include "common/strings.h"

namespace meshplug {
namespace {

std::string NameList(const google::protobuf::RepeatedPtrField<v1::ChainModule>& chain) {
  std::string out = "[";
  for (int i = 0; i < chain.size(); ++i) {
    out += (i ? ", " : "") + JsonQuote(chain[i].name());
  }
  return out + "]";
}

}  // namespace

std::string ConfigDumpJson(const v1::Snapshot& snapshot) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  std::string body;
  (void)google::protobuf::util::MessageToJsonString(snapshot, &body, options);
  const auto& c = snapshot.chains();
  return "{\n\"version\": " + JsonQuote(snapshot.version()) + ",\n\"chains\": {\n" +
         "  \"inbound-tcp\": " + NameList(c.inbound_tcp()) + ",\n" +
         "  \"inbound-http\": " + NameList(c.inbound_http()) + ",\n" +
         "  \"outbound-tcp\": " + NameList(c.outbound_tcp()) + ",\n" +
         "  \"outbound-http\": " + NameList(c.outbound_http()) + "\n},\n" +
         "\"snapshot\": " + body + "}\n";
}

}  // namespace meshplug
