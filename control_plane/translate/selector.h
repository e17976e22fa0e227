#pragma once

#include <string>

#include "meshplug/v1/resources.pb.h"

namespace meshplug::control_plane::translate {

using Labels = google::protobuf::Map<std::string, std::string>;

// Kubernetes label selector semantics: matchLabels and every matchExpression must hold.
// An absent selector (`present` false) matches everything; a present but empty one too.
bool Matches(const mesh::v1::LabelSelector& selector, const Labels& labels);

// A Service's selector: every label must be there with its value. An empty selector
// selects nothing, as in Kubernetes.
bool SelectorMatches(const Labels& selector, const Labels& labels);

}  // namespace meshplug::control_plane::translate
