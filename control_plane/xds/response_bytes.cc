#include "control_plane/xds/response_bytes.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>
#include <grpcpp/support/proto_buffer_reader.h>

#include "envoy/service/discovery/v3/discovery.pb.h"

namespace meshplug::control_plane::xds {

namespace {

using envoy::service::discovery::v3::DeltaDiscoveryResponse;
using envoy::service::discovery::v3::DiscoveryResponse;
using envoy::service::discovery::v3::Resource;

// Every field written here is length-delimited, with a one-byte tag.
static_assert(int{DiscoveryResponse::kResourcesFieldNumber} == int{DeltaDiscoveryResponse::kResourcesFieldNumber});
constexpr int kResponseResources = DiscoveryResponse::kResourcesFieldNumber;
static_assert(Resource::kNameFieldNumber < 16 && Resource::kVersionFieldNumber < 16 &&
              Resource::kResourceFieldNumber < 16 && kResponseResources < 16);

using google::protobuf::io::CodedOutputStream;
using google::protobuf::internal::WireFormatLite;

// The tag and length of a length-delimited field of `size` bytes.
void AppendHeader(std::string& out, int field, size_t size) {
  uint8_t bytes[20];  // two varints of at most 10 bytes
  uint8_t* end = CodedOutputStream::WriteVarint32ToArray(
      WireFormatLite::MakeTag(field, WireFormatLite::WIRETYPE_LENGTH_DELIMITED), bytes);
  end = CodedOutputStream::WriteVarint64ToArray(size, end);
  out.append(reinterpret_cast<const char*>(bytes), static_cast<size_t>(end - bytes));
}

size_t FieldSize(size_t size) { return 1 + CodedOutputStream::VarintSize64(size) + size; }  // field numbers < 16

}  // namespace

void ResponseBytes::AddAny(const EncodedResource& r) {
  AppendHeader(own_, kResponseResources, r.any.size());
  pieces_.push_back({own_.size(), r.any});
}

void ResponseBytes::AddLayer(const AgentResources& layer, const std::string& type_url) {
  const grpc::Slice& entries = layer.SotwEntries(type_url, [](const AgentResources::Named& named) {
    std::string out;
    for (const auto& [_, r] : named) {
      AppendHeader(out, kResponseResources, r->any.size());
      out.append(r->AnyBytes());
    }
    return SliceOwning(std::move(out));
  });
  pieces_.push_back({own_.size(), entries});
}

void ResponseBytes::AddResource(const EncodedResource& r) {
  const size_t resource = FieldSize(r.name.size()) + FieldSize(r.version.size()) + FieldSize(r.any.size());
  AppendHeader(own_, kResponseResources, resource);
  AppendHeader(own_, Resource::kNameFieldNumber, r.name.size());
  own_ += r.name;
  AppendHeader(own_, Resource::kVersionFieldNumber, r.version.size());
  own_ += r.version;
  AppendHeader(own_, Resource::kResourceFieldNumber, r.any.size());
  pieces_.push_back({own_.size(), r.any});
}

void ResponseBytes::Finish(const google::protobuf::Message& head, grpc::ByteBuffer* out) && {
  head.AppendToString(&own_);
  pieces_.push_back({own_.size(), std::nullopt});
  // One slice owns this response's own bytes; the pieces between the Anys are views of it
  // (gRPC copies those of 23 bytes or less into the slice itself).
  const grpc::Slice own = SliceOwning(std::move(own_));
  std::vector<grpc::Slice> slices;
  slices.reserve(pieces_.size() * 2);
  size_t begin = 0;
  for (Piece& p : pieces_) {
    if (p.end > begin) slices.push_back(own.sub(begin, p.end));
    if (p.any) slices.push_back(std::move(*p.any));
    begin = p.end;
  }
  grpc::ByteBuffer(slices.data(), slices.size()).Swap(out);  // ByteBuffer has no move
}

bool ParseFrom(grpc::ByteBuffer& buffer, google::protobuf::Message& msg) {
  grpc::ProtoBufferReader reader(&buffer);  // reads the slices in place
  return msg.ParseFromZeroCopyStream(&reader) && reader.status().ok();
}

}  // namespace meshplug::control_plane::xds
