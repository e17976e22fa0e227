// The store of replicated control planes: etcd's v3 gRPC API (KV, Watch, Lease). Any
// number of control planes share one etcd cluster; each sees the others' commits through
// its watch. The store revision is etcd's revision and an object's resource_version is
// its mod_revision, so a stale write fails in one etcd transaction exactly as on SQLite.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/periodic.h"
#include "control_plane/store/notifier.h"
#include "control_plane/store/store.h"
#include "etcd/api/etcdserverpb/rpc.grpc.pb.h"

namespace meshplug::control_plane::store {

class EtcdStore : public Store {
 public:
  struct Options {
    std::vector<std::string> endpoints;  // host:port of etcd members
    std::string prefix = "/meshplug/";   // every key meshplug writes starts with it
    // How long a call waits for etcd (also for a lost quorum to come back) before it fails.
    std::chrono::milliseconds timeout{5000};
    // How many revisions of change log are kept in memory for watchers that fall behind.
    int64_t log_revisions = 10000;
    // Live values vanish this long after this process stops keeping their lease alive.
    std::chrono::seconds live_ttl{10};
  };

  // "etcd://HOST:PORT[,HOST:PORT...]" → endpoints; an error names what is wrong.
  static absl::StatusOr<std::vector<std::string>> ParseUrl(std::string_view url);
  // Connects and starts following etcd's changes; UNAVAILABLE (naming the endpoints)
  // when etcd does not answer within the timeout.
  static absl::StatusOr<std::unique_ptr<EtcdStore>> Open(Options options);
  ~EtcdStore() override;

  absl::StatusOr<int64_t> Commit(const std::vector<Write>& writes) override;
  absl::StatusOr<std::optional<Entry>> Get(const Key& key) override;
  absl::StatusOr<std::vector<Entry>> List(std::optional<Kind> kind, const std::string& ns) override;
  int64_t Revision() override;
  absl::StatusOr<std::vector<Event>> ChangesSince(int64_t since, int64_t max_revisions) override;
  Subscription Subscribe(std::function<void(int64_t)> fn) override;
  absl::StatusOr<std::optional<std::string>> GetSecret(const std::string& name) override;
  absl::StatusOr<bool> CreateSecret(const std::string& name, const std::string& value, int64_t expires_unix) override;
  absl::Status PutSecret(const std::string& name, const std::string& value) override;
  absl::Status DeleteSecret(const std::string& name) override;
  absl::StatusOr<std::map<std::string, Secret>> ListSecrets() override;
  absl::Status PutLive(const std::map<std::string, std::string>& values) override;
  absl::StatusOr<bool> CreateLive(const std::string& name, const std::string& value) override;
  absl::Status DeleteLive(const std::string& name) override;
  absl::StatusOr<std::map<std::string, std::string>> ListLive(const std::string& prefix) override;
  bool Shared() const override { return true; }
  std::string Describe() const override;

 private:
  EtcdStore(Options options, const std::shared_ptr<grpc::Channel>& channel);

  enum class Retry { kSafe, kNever };
  // One unary call within the timeout; etcd's errors become statuses that name etcd. A
  // kSafe call (a read, or a write whose repeat changes nothing) is sent again when a
  // member goes away or the leader changes.
  // `until`: the call's deadline (default: the timeout from now).
  template <typename Req, typename Resp, typename Stub>
  absl::StatusOr<Resp> Call(Stub& stub,
                            grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Resp*),
                            const Req& req, Retry retry = Retry::kSafe,
                            std::optional<std::chrono::system_clock::time_point> until = std::nullopt) const;
  absl::Status NoAnswer() const;  // etcd did not answer within the timeout
  // Sends a commit's transaction (with this process's marker) until it is known whether
  // it was applied; its revision, or why not.
  absl::StatusOr<int64_t> CommitTxn(etcdserverpb::TxnRequest& txn, const std::vector<const Write*>& checked);
  // The revision at which this store's commit `seq` was applied, if it was.
  absl::StatusOr<std::optional<int64_t>> AppliedAt(const std::string& seq,
                                                   std::chrono::system_clock::time_point until) const;
  static absl::Status FailedChecks(const etcdserverpb::TxnResponse& resp, const std::vector<const Write*>& checked);
  absl::StatusOr<etcdserverpb::RangeResponse> Range(const std::string& key, const std::string& range_end,
                                                    int64_t revision, int64_t limit) const;

  std::string ResourceKey(const Key& key) const;
  std::string SecretKey(const std::string& name) const;
  absl::StatusOr<Entry> EntryOf(const mvccpb::KeyValue& kv) const;

  // The watch thread: follows every resource change from revision_ + 1, resuming after
  // a broken stream and starting the log afresh after a compaction.
  void Follow();
  bool FollowOnce();  // one watch stream; true when it was healthy (resume after a short pause)
  void Append(const etcdserverpb::WatchResponse& resp);
  void Reset(int64_t revision, const std::string& why);
  // Waits until the watch has seen `revision` (or the timeout).
  void AwaitSeen(int64_t revision);

  // Live values: one lease for this process, kept alive by the keeper thread; when it
  // expired anyway (etcd was away longer than its TTL) a new one is granted and this
  // process's live values are written again.
  std::string LiveKey(const std::string& name) const;
  absl::StatusOr<int64_t> LiveLease();  // live_mu_ held
  absl::StatusOr<int64_t> GrantLease(int64_t ttl_seconds) const;
  absl::Status PutLiveLocked(const std::map<std::string, std::string>& values);           // live_mu_ held
  absl::StatusOr<bool> CreateLiveLocked(const std::string& name, const std::string& value);  // live_mu_ held
  void KeepAlive();  // one turn of the keeper
  void Revoke(int64_t lease, std::chrono::system_clock::time_point until) const;  // best effort
  bool KeepAliveOnce(int64_t lease);  // false when the lease is gone
  bool WriteAllLive();                // live_mu_ held; false when etcd failed
  bool Stopping();

  const Options options_;
  std::string marker_key_;  // this process's commit marker
  std::mutex commit_mu_;  // commits go one at a time: they share the marker
  int64_t commits_ = 0;   // under commit_mu_
  std::unique_ptr<etcdserverpb::KV::Stub> kv_;
  std::unique_ptr<etcdserverpb::Watch::Stub> watch_;
  std::unique_ptr<etcdserverpb::Lease::Stub> lease_stub_;

  std::mutex mu_;
  std::condition_variable seen_;
  bool stopping_ = false;
  grpc::ClientContext* watching_ = nullptr;  // the live watch, cancelled on destruction
  // The change log: every resource event after floor_, in order; revision_ is the last
  // revision the watch has caught up with.
  std::deque<Event> log_;
  int64_t log_revisions_ = 0;  // distinct revisions in log_
  int64_t floor_ = 0;
  std::atomic<int64_t> revision_{0};
  Notifier notifier_;
  std::thread follower_;

  struct LiveValue {
    std::string value;
    bool exclusive;  // made by CreateLive: written again only if still free
  };
  std::mutex live_mu_;
  std::map<std::string, LiveValue> live_;
  int64_t lease_ = 0;
  bool rewrite_ = false;  // the lease expired: live_ must be written again
  Periodic keeper_;
};

}  // namespace meshplug::control_plane::store
