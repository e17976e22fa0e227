#include "control_plane/xds/response_bytes.h"

#include <grpcpp/support/proto_buffer_reader.h>

namespace meshplug::control_plane::xds {

namespace {

// Field numbers of discovery.proto (reference/xds-v3.md); every one is length-delimited.
constexpr int kResponseResources = 2;  // DiscoveryResponse and DeltaDiscoveryResponse
constexpr int kResourceVersion = 1;
constexpr int kResourceAny = 2;
constexpr int kResourceName = 3;

void AppendVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

size_t VarintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

// The tag and length of a length-delimited field of `size` bytes.
void AppendHeader(std::string& out, int field, size_t size) {
  AppendVarint(out, static_cast<uint64_t>(field) << 3 | 2);
  AppendVarint(out, size);
}

size_t FieldSize(size_t size) { return 1 + VarintSize(size) + size; }  // field numbers < 16

}  // namespace

void ResponseBytes::AddAny(const EncodedResource& r) {
  AppendHeader(own_, kResponseResources, r.any.size());
  pieces_.push_back({own_.size(), r.any});
}

void ResponseBytes::AddResource(const EncodedResource& r) {
  const size_t resource = FieldSize(r.name.size()) + FieldSize(r.version.size()) + FieldSize(r.any.size());
  AppendHeader(own_, kResponseResources, resource);
  AppendHeader(own_, kResourceName, r.name.size());
  own_ += r.name;
  AppendHeader(own_, kResourceVersion, r.version.size());
  own_ += r.version;
  AppendHeader(own_, kResourceAny, r.any.size());
  pieces_.push_back({own_.size(), r.any});
}

grpc::ByteBuffer ResponseBytes::Finish(const google::protobuf::Message& head) && {
  head.AppendToString(&own_);
  pieces_.push_back({own_.size(), std::nullopt});
  // One slice owns this response's own bytes; the pieces between the Anys are views of it.
  auto* owned = new std::string(std::move(own_));
  const grpc::Slice own(owned->data(), owned->size(), [](void* s) { delete static_cast<std::string*>(s); }, owned);
  std::vector<grpc::Slice> slices;
  slices.reserve(pieces_.size() * 2);
  size_t begin = 0;
  for (Piece& p : pieces_) {
    if (p.end > begin) slices.push_back(own.sub(begin, p.end));
    if (p.any) slices.push_back(std::move(*p.any));
    begin = p.end;
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
}

bool ParseFrom(const grpc::ByteBuffer& buffer, google::protobuf::Message& msg) {
  grpc::ByteBuffer view(buffer);  // the reader consumes; this copies references, not bytes
  grpc::ProtoBufferReader reader(&view);
  return msg.ParseFromZeroCopyStream(&reader);
}

}  // namespace meshplug::control_plane::xds
