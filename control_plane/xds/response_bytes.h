// A response's wire bytes built from its own small fields and the shared encodings of its
// resources, which it references instead of copying: pushing one change to N agents
// serialises each resource once (when it is encoded), not once per agent and response.
#pragma once

#include <google/protobuf/message.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include <optional>
#include <string>
#include <vector>

#include "control_plane/xds/resources.h"

namespace meshplug::control_plane::xds {

class ResponseBytes {
 public:
  // A DiscoveryResponse's `resources` entry: the resource's Any.
  void AddAny(const EncodedResource& r);
  // AddAny of every resource of `type_url` that `layer` holds itself, framed once per layer
  // and type and referenced by every response over it.
  void AddLayer(const AgentResources& layer, const std::string& type_url);
  // A DeltaDiscoveryResponse's `resources` entry: a Resource of name, version and Any.
  void AddResource(const EncodedResource& r);
  // Sets `out` to `head` (the response without resources) and the resources added, in order.
  void Finish(const google::protobuf::Message& head, grpc::ByteBuffer* out) &&;

 private:
  // The bytes this response writes itself, and where each resource's shared Any goes.
  struct Piece {
    size_t end;                      // of the own bytes before it
    std::optional<grpc::Slice> any;  // a reference; none for the last piece
  };
  std::string own_;
  std::vector<Piece> pieces_;
};

// Parses `buffer` into `msg`; false when it is not a `msg`.
bool ParseFrom(grpc::ByteBuffer& buffer, google::protobuf::Message& msg);

}  // namespace meshplug::control_plane::xds
