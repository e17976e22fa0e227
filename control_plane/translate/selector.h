#pragma once

#include <map>
#include <string>

#include "meshplug/v1/resources.pb.h"

namespace meshplug::translate {

using Labels = google::protobuf::Map<std::string, std::string>;

// Kubernetes label selector semantics: matchLabels and every matchExpression must hold.
// An absent selector (`present` false) matches everything; a present but empty one too.
bool Matches(const mesh::v1::LabelSelector& selector, const Labels& labels);

}  // namespace meshplug::translate
