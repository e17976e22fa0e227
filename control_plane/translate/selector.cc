#include "control_plane/translate/selector.h"

#include <algorithm>

namespace meshplug::control_plane::translate {

bool Matches(const mesh::v1::LabelSelector& selector, const Labels& labels) {
  for (const auto& [k, v] : selector.match_labels()) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  for (const auto& req : selector.match_expressions()) {
    auto it = labels.find(req.key());
    const bool has = it != labels.end();
    const bool in = has && std::find(req.values().begin(), req.values().end(), it->second) != req.values().end();
    const std::string& op = req.operator_();
    if (op == "In" && !in) return false;
    if (op == "NotIn" && in) return false;
    if (op == "Exists" && !has) return false;
    if (op == "DoesNotExist" && has) return false;
  }
  return true;
}

bool SelectorMatches(const Labels& selector, const Labels& labels) {
  if (selector.empty()) return false;
  for (const auto& [k, v] : selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

}  // namespace meshplug::control_plane::translate
