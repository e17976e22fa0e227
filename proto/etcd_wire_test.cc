// Wire compatibility with etcd's v3 API (api/etcdserverpb/rpc.proto, api/mvccpb/kv.proto
// of etcd 3.4): requests encoded by the generated code must be the bytes etcd expects,
// and etcd's responses, encoded by hand from its field numbers, must parse with nothing
// unknown. A wrong field number or type in proto/etcd makes one of these fail.
#include <gtest/gtest.h>

#include <string>

#include "etcd/api/etcdserverpb/rpc.grpc.pb.h"
#include "etcd/api/mvccpb/kv.pb.h"
#include "proto/testing/wire.h"

namespace {

using namespace meshplug::wire;

// mvccpb.KeyValue{key 1, create_revision 2, mod_revision 3, version 4, value 5, lease 6}
std::string KeyValueBytes() { return Str(1, "/k") + Int(2, 5) + Int(3, 9) + Int(4, 2) + Str(5, "v") + Int(6, 77); }

void ExpectKeyValue(const mvccpb::KeyValue& kv) {
  EXPECT_EQ(kv.key(), "/k");
  EXPECT_EQ(kv.create_revision(), 5);
  EXPECT_EQ(kv.mod_revision(), 9);
  EXPECT_EQ(kv.version(), 2);
  EXPECT_EQ(kv.value(), "v");
  EXPECT_EQ(kv.lease(), 77);
}

// ResponseHeader{cluster_id 1, member_id 2, revision 3, raft_term 4}
std::string HeaderBytes(int64_t revision) { return Int(1, 11) + Int(2, 22) + Int(3, revision) + Int(4, 3); }

TEST(EtcdWire, ServicesHaveEtcdsNames) {
  // gRPC method paths are /<service full name>/<method>.
  EXPECT_EQ(etcdserverpb::KV::service_full_name(), std::string("etcdserverpb.KV"));
  EXPECT_EQ(etcdserverpb::Watch::service_full_name(), std::string("etcdserverpb.Watch"));
  EXPECT_EQ(etcdserverpb::Lease::service_full_name(), std::string("etcdserverpb.Lease"));
  const auto* kv = etcdserverpb::RangeRequest::descriptor()->file()->FindServiceByName("KV");
  ASSERT_NE(kv, nullptr);
  for (const char* method : {"Range", "Put", "DeleteRange", "Txn", "Compact"}) {
    EXPECT_NE(kv->FindMethodByName(method), nullptr) << method;
  }
}

TEST(EtcdWire, TxnRequestIsEtcdsEncoding) {
  etcdserverpb::TxnRequest txn;
  auto* c = txn.add_compare();
  c->set_result(etcdserverpb::Compare::EQUAL);  // 0: not on the wire
  c->set_target(etcdserverpb::Compare::MOD);
  c->set_key("/a");
  c->set_mod_revision(7);
  auto* absent = txn.add_compare();
  absent->set_target(etcdserverpb::Compare::CREATE);
  absent->set_key("/b");
  absent->set_create_revision(0);  // a oneof member: on the wire even when 0
  auto* put = txn.add_success()->mutable_request_put();
  put->set_key("/a");
  put->set_value("A");
  put->set_lease(9);
  txn.add_success()->mutable_request_delete_range()->set_key("/b");
  auto* range = txn.add_failure()->mutable_request_range();
  range->set_key("/a");
  range->set_range_end("/b");
  range->set_revision(4);

  // Compare{result 1, target 2, key 3, create_revision 5, mod_revision 6}; TxnRequest
  // {compare 1, success 2, failure 3}; RequestOp{range 1, put 2, delete_range 3}.
  const std::string expected = Msg(1, Int(2, 2) + Str(3, "/a") + Int(6, 7)) +
                               Msg(1, Int(2, 1) + Str(3, "/b") + Int(5, 0)) +
                               Msg(2, Msg(2, Str(1, "/a") + Str(2, "A") + Int(3, 9))) +
                               Msg(2, Msg(3, Str(1, "/b"))) +
                               Msg(3, Msg(1, Str(1, "/a") + Str(2, "/b") + Int(4, 4)));
  EXPECT_EQ(txn.SerializeAsString(), expected);
}

TEST(EtcdWire, TxnResponseParsesEtcdsEncoding) {
  // TxnResponse{header 1, succeeded 2, responses 3}; ResponseOp{response_range 1};
  // RangeResponse{header 1, kvs 2, more 3, count 4}.
  const std::string bytes = Msg(1, HeaderBytes(42)) + Int(2, 0) +
                            Msg(3, Msg(1, Msg(1, HeaderBytes(42)) + Msg(2, KeyValueBytes()) + Int(3, 1) + Int(4, 3)));
  const auto resp = Parse<etcdserverpb::TxnResponse>(bytes);
  EXPECT_EQ(resp.header().revision(), 42);
  EXPECT_EQ(resp.header().member_id(), 22u);
  EXPECT_FALSE(resp.succeeded());
  ASSERT_EQ(resp.responses_size(), 1);
  const auto& range = resp.responses(0).response_range();
  ASSERT_EQ(range.kvs_size(), 1);
  ExpectKeyValue(range.kvs(0));
  EXPECT_TRUE(range.more());
  EXPECT_EQ(range.count(), 3);
}

TEST(EtcdWire, WatchCreateIsEtcdsEncoding) {
  etcdserverpb::WatchRequest req;
  auto* create = req.mutable_create_request();
  create->set_key("/r/");
  create->set_range_end("/r0");
  create->set_start_revision(12);
  create->set_progress_notify(true);
  create->set_prev_kv(true);
  // WatchRequest{create_request 1}; WatchCreateRequest{key 1, range_end 2,
  // start_revision 3, progress_notify 4, prev_kv 6}.
  EXPECT_EQ(req.SerializeAsString(),
            Msg(1, Str(1, "/r/") + Str(2, "/r0") + Int(3, 12) + Int(4, 1) + Int(6, 1)));
}

TEST(EtcdWire, WatchResponseParsesEtcdsEncoding) {
  // WatchResponse{header 1, watch_id 2, created 3, canceled 4, compact_revision 5,
  // cancel_reason 6, events 11}; Event{type 1, kv 2, prev_kv 3}.
  const std::string bytes = Msg(1, HeaderBytes(50)) + Int(2, 3) + Int(4, 1) + Int(5, 17) +
                            Str(6, "compacted") + Msg(11, Int(1, 1) + Msg(2, KeyValueBytes()) + Msg(3, KeyValueBytes()));
  const auto resp = Parse<etcdserverpb::WatchResponse>(bytes);
  EXPECT_EQ(resp.header().revision(), 50);
  EXPECT_EQ(resp.watch_id(), 3);
  EXPECT_TRUE(resp.canceled());
  EXPECT_EQ(resp.compact_revision(), 17);
  EXPECT_EQ(resp.cancel_reason(), "compacted");
  ASSERT_EQ(resp.events_size(), 1);
  EXPECT_EQ(resp.events(0).type(), mvccpb::Event::DELETE);
  ExpectKeyValue(resp.events(0).kv());
  ExpectKeyValue(resp.events(0).prev_kv());
}

TEST(EtcdWire, LeaseMessagesAreEtcds) {
  etcdserverpb::LeaseGrantRequest grant;
  grant.set_ttl(10);
  EXPECT_EQ(grant.SerializeAsString(), Int(1, 10));
  // LeaseGrantResponse{header 1, ID 2, TTL 3, error 4}
  const auto granted = Parse<etcdserverpb::LeaseGrantResponse>(Msg(1, HeaderBytes(1)) + Int(2, 99) + Int(3, 10) +
                                                                Str(4, ""));
  EXPECT_EQ(granted.id(), 99);
  EXPECT_EQ(granted.ttl(), 10);
  etcdserverpb::LeaseKeepAliveRequest keep;
  keep.set_id(99);
  EXPECT_EQ(keep.SerializeAsString(), Int(1, 99));
  const auto kept = Parse<etcdserverpb::LeaseKeepAliveResponse>(Msg(1, HeaderBytes(1)) + Int(2, 99) + Int(3, 4));
  EXPECT_EQ(kept.ttl(), 4);
  etcdserverpb::LeaseTimeToLiveRequest ttl;
  ttl.set_id(99);
  ttl.set_keys(true);
  EXPECT_EQ(ttl.SerializeAsString(), Int(1, 99) + Int(2, 1));
  // LeaseTimeToLiveResponse{header 1, ID 2, TTL 3, grantedTTL 4, keys 5}
  const auto left = Parse<etcdserverpb::LeaseTimeToLiveResponse>(Msg(1, HeaderBytes(1)) + Int(2, 99) + Int(3, 7) +
                                                                 Int(4, 10) + Str(5, "/k"));
  EXPECT_EQ(left.ttl(), 7);
  EXPECT_EQ(left.grantedttl(), 10);
  EXPECT_EQ(left.keys(0), "/k");
}

}  // namespace
