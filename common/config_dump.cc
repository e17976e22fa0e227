#include "common/config_dump.h"

#include <google/protobuf/util/json_util.h>

#include "common/chain_info.h"
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

std::string ChainsJson(const v1::Snapshot& snapshot) {
  std::string chains;
  for (const ChainInfo& chain : Chains()) {
    if (!chains.empty()) chains += ",\n";
    chains += "  " + JsonQuote(chain.name) + ": " + NameList(ModulesOf(snapshot.chains(), chain));
  }
  return "{\n" + chains + "\n}";
}

std::string ConfigDumpJson(const v1::Snapshot& snapshot) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  std::string body;
  (void)google::protobuf::util::MessageToJsonString(snapshot, &body, options);
  return "{\n\"version\": " + JsonQuote(snapshot.version()) + ",\n\"chains\": " + ChainsJson(snapshot) + ",\n" +
         "\"snapshot\": " + body + "}\n";
}

}  // namespace meshplug
