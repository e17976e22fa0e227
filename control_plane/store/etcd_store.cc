#include "control_plane/store/etcd_store.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <algorithm>
#include <ctime>

#include "common/log.h"
#include "common/secret.h"
#include "common/strings.h"

namespace meshplug::control_plane::store {
namespace {

using etcdserverpb::Compare;

// The first key after every key that starts with `prefix`: etcd's range end for a prefix.
std::string PrefixEnd(std::string prefix) {
  while (!prefix.empty() && static_cast<unsigned char>(prefix.back()) == 0xff) prefix.pop_back();
  if (!prefix.empty()) prefix.back() = static_cast<char>(prefix.back() + 1);
  return prefix;
}

// "ipv4:A:P,B:P": with round_robin, calls go to every member that is up, so a member cut
// off from the others (its "no leader" answers) is not the only one asked again.
absl::StatusOr<std::string> ChannelTarget(const std::vector<std::string>& endpoints) {
  std::vector<std::string> addresses;
  for (const auto& endpoint : endpoints) {
    const size_t colon = endpoint.rfind(':');
    const std::string host = endpoint.substr(0, colon);
    addrinfo hints{};
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (int rc = getaddrinfo(host.c_str(), nullptr, &hints, &found); rc != 0) {
      return absl::InvalidArgumentError(Cat("etcd member ", endpoint, ": cannot resolve ", host, ": ", gai_strerror(rc)));
    }
    char ip[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(found->ai_addr)->sin_addr, ip, sizeof ip);
    freeaddrinfo(found);
    addresses.push_back(Cat(ip, endpoint.substr(colon)));
  }
  return "ipv4:" + Join(addresses, ",");
}

// A transaction that puts `value` at `key` on `lease` (0: none); with `if_absent`, only
// when nothing is there.
etcdserverpb::TxnRequest PutTxn(const std::string& key, const std::string& value, int64_t lease, bool if_absent) {
  etcdserverpb::TxnRequest txn;
  if (if_absent) {
    Compare* absent = txn.add_compare();
    absent->set_key(key);
    absent->set_target(Compare::CREATE);
    absent->set_create_revision(0);
  }
  auto* put = txn.add_success()->mutable_request_put();
  put->set_key(key);
  put->set_value(value);
  put->set_lease(lease);
  return txn;
}

int64_t SecondsFrom(std::chrono::milliseconds d) { return std::max<int64_t>(1, (d.count() + 999) / 1000); }

}  // namespace

absl::StatusOr<std::vector<std::string>> EtcdStore::ParseUrl(std::string_view url) {
  constexpr std::string_view kScheme = "etcd://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    return absl::InvalidArgumentError(Cat("\"", url, "\" is not etcd://HOST:PORT[,HOST:PORT...]"));
  }
  std::vector<std::string> endpoints;
  for (std::string_view member : Split(url.substr(kScheme.size()), ',')) {
    const size_t colon = member.rfind(':');
    if (colon == std::string_view::npos || colon == 0 || !ParsePort(member.substr(colon + 1))) {
      return absl::InvalidArgumentError(Cat("etcd member \"", member, "\" in ", url, " is not HOST:PORT"));
    }
    endpoints.emplace_back(member);
  }
  return endpoints;
}

absl::StatusOr<std::unique_ptr<EtcdStore>> EtcdStore::Open(Options options) {
  if (options.endpoints.empty()) return absl::InvalidArgumentError("no etcd members given");
  auto target = ChannelTarget(options.endpoints);
  if (!target.ok()) return target.status();
  grpc::ChannelArguments args;
  // A member that vanished without closing its connections is noticed within seconds.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 3000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetLoadBalancingPolicyName("round_robin");
  auto channel = grpc::CreateCustomChannel(*target, grpc::InsecureChannelCredentials(), args);
  std::unique_ptr<EtcdStore> store(new EtcdStore(std::move(options), channel));
  store->marker_key_ = Cat(store->options_.prefix, "commits/", SecretHex(8));
  // Where the log starts: the revision of this first read.
  auto first = store->Range(store->options_.prefix, PrefixEnd(store->options_.prefix), 0, 1);
  if (!first.ok()) return first.status();
  store->revision_ = first->header().revision();
  store->floor_ = first->header().revision();
  store->follower_ = std::thread([s = store.get()] { s->Follow(); });
  store->keeper_.Start(std::max<std::chrono::milliseconds>(store->options_.live_ttl / 3, std::chrono::milliseconds(500)),
                       [s = store.get()] { s->KeepAlive(); });
  return store;
}

EtcdStore::EtcdStore(Options options, const std::shared_ptr<grpc::Channel>& channel)
    : options_(std::move(options)),
      kv_(etcdserverpb::KV::NewStub(channel)),
      watch_(etcdserverpb::Watch::NewStub(channel)),
      lease_stub_(etcdserverpb::Lease::NewStub(channel)) {}

EtcdStore::~EtcdStore() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    if (watching_) watching_->TryCancel();
  }
  seen_.notify_all();
  if (follower_.joinable()) follower_.join();
  keeper_.Stop();
  // Stopping cleanly: this process's live values go at once, not after their TTL. Briefly:
  // an etcd that is away must not hold the shutdown.
  const auto soon = std::chrono::system_clock::now() + std::chrono::seconds(1);
  if (lease_ != 0) Revoke(lease_, soon);
  etcdserverpb::DeleteRangeRequest del;
  del.set_key(marker_key_);
  Call(*kv_, &etcdserverpb::KV::Stub::DeleteRange, del, Retry::kNever, soon).IgnoreError();
}

std::string EtcdStore::Describe() const { return "etcd://" + Join(options_.endpoints, ","); }

absl::Status EtcdStore::NoAnswer() const {
  return absl::UnavailableError(Cat("etcd (", Describe(), ") did not answer within ", SecondsFrom(options_.timeout),
                                         " s: are a quorum of its members up and reachable?"));
}

template <typename Req, typename Resp, typename Stub>
absl::StatusOr<Resp> EtcdStore::Call(Stub& stub,
                                     grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Resp*),
                                     const Req& req, Retry retry,
                                     std::optional<std::chrono::system_clock::time_point> until) const {
  using SystemClock = std::chrono::system_clock;
  const auto deadline = until.value_or(SystemClock::now() + options_.timeout);
  for (;;) {
    grpc::ClientContext ctx;
    // A request safe to repeat is tried in shorter turns: one etcd dropped while it had no
    // leader is sent again once a leader is elected, rather than waiting out the deadline.
    ctx.set_deadline(retry == Retry::kSafe ? std::min(deadline, SystemClock::now() + options_.timeout / 3) : deadline);
    // Wait for a member while the channel moves to another one, up to the deadline.
    ctx.set_wait_for_ready(true);
    Resp resp;
    const grpc::Status st = (stub.*method)(&ctx, req, &resp);
    if (st.ok()) return resp;
    const bool time_left = SystemClock::now() + std::chrono::milliseconds(100) < deadline;
    switch (st.error_code()) {
      case grpc::StatusCode::DEADLINE_EXCEEDED:
        if (retry == Retry::kSafe && time_left) continue;
        return NoAnswer();
      case grpc::StatusCode::UNAVAILABLE:
        // A member went away or the leader changed: a request that is safe to repeat goes
        // to the next member.
        if (retry == Retry::kSafe && time_left) {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
          continue;
        }
        return absl::UnavailableError(Cat("etcd (", Describe(), ") is unavailable: ", st.error_message()));
      default:
        return absl::Status(static_cast<absl::StatusCode>(st.error_code()),
                            Cat("etcd (", Describe(), ") refused the request: ", st.error_message()));
    }
  }
}

absl::StatusOr<etcdserverpb::RangeResponse> EtcdStore::Range(const std::string& key, const std::string& range_end,
                                                              int64_t revision, int64_t limit) const {
  etcdserverpb::RangeRequest req;
  req.set_key(key);
  req.set_range_end(range_end);
  req.set_revision(revision);
  req.set_limit(limit);
  return Call(*kv_, &etcdserverpb::KV::Stub::Range, req);
}

std::string EtcdStore::ResourceKey(const Key& key) const {
  return Cat(options_.prefix, "resources/", resources::KindName(key.kind), "/", key.ns, "/", key.name);
}

std::string EtcdStore::SecretKey(const std::string& name) const { return Cat(options_.prefix, "secrets/", name); }

absl::StatusOr<Entry> EtcdStore::EntryOf(const mvccpb::KeyValue& kv) const {
  const std::string_view path = std::string_view(kv.key()).substr(options_.prefix.size() + sizeof("resources/") - 1);
  const std::vector<std::string_view> parts = Split(path, '/', 3);
  const resources::KindInfo* info = parts.size() == 3 ? resources::FindKind(parts[0]) : nullptr;
  if (info == nullptr) return absl::DataLossError(Cat("etcd holds ", kv.key(), ", which is not a resource this build knows"));
  return Entry{Key{info->id, std::string(parts[1]), std::string(parts[2])}, kv.value(), kv.mod_revision(),
               kv.create_revision()};
}

absl::StatusOr<int64_t> EtcdStore::Commit(const std::vector<Write>& writes) {
  if (writes.empty()) return Revision();
  etcdserverpb::TxnRequest txn;
  std::vector<const Write*> checked;  // in the order of the failure branch's reads
  for (const Write& w : writes) {
    const std::string key = ResourceKey(w.key);
    if (w.expected_version || !w.value) {
      // A delete: it must exist (a mod_revision compare with a version says so already;
      // each compare counts towards etcd's 128 per transaction).
      if (!w.value && (!w.expected_version || *w.expected_version == 0)) {
        Compare* c = txn.add_compare();
        c->set_key(key);
        c->set_target(Compare::VERSION);
        c->set_result(Compare::GREATER);
        c->set_version(0);
      }
      if (w.expected_version) {
        Compare* c = txn.add_compare();
        c->set_key(key);
        if (*w.expected_version == 0) {
          c->set_target(Compare::CREATE);
          c->set_create_revision(0);
        } else {
          c->set_target(Compare::MOD);
          c->set_mod_revision(*w.expected_version);
        }
      }
      auto* read = txn.add_failure()->mutable_request_range();
      read->set_key(key);
      read->set_keys_only(true);  // only its mod_revision is read
      checked.push_back(&w);
    }
    if (w.value) {
      auto* put = txn.add_success()->mutable_request_put();
      put->set_key(key);
      put->set_value(*w.value);
    } else {
      txn.add_success()->mutable_request_delete_range()->set_key(key);
    }
  }
  auto revision = CommitTxn(txn, checked);
  if (!revision.ok()) return revision.status();
  // Not under commit_mu_: the next commit need not wait for this one's watch.
  AwaitSeen(*revision);
  return revision;
}

absl::StatusOr<int64_t> EtcdStore::CommitTxn(etcdserverpb::TxnRequest& txn, const std::vector<const Write*>& checked) {
  // The marker tells, after an answer that was lost (the leader changed, the member went
  // away), whether this transaction was applied. One marker per process, so its commits
  // go one at a time (as SQLite's do): another commit could overwrite it meanwhile.
  std::lock_guard one_at_a_time(commit_mu_);
  const std::string seq = std::to_string(++commits_);
  auto* marker = txn.add_success()->mutable_request_put();
  marker->set_key(marker_key_);
  marker->set_value(seq);
  using SystemClock = std::chrono::system_clock;
  const auto give_up = SystemClock::now() + options_.timeout;
  for (int attempt = 0;; ++attempt) {
    // Short tries: etcd drops a proposal made while there is no leader, and its caller
    // would otherwise wait out the whole timeout although a leader is elected in a second.
    const auto try_until = std::min(give_up, SystemClock::now() + options_.timeout / 3);
    auto resp = Call(*kv_, &etcdserverpb::KV::Stub::Txn, txn, Retry::kNever, try_until);
    if (resp.ok() && resp->succeeded()) return resp->header().revision();
    const bool unanswered = !resp.ok() && resp.status().code() == absl::StatusCode::kUnavailable;
    if (unanswered || attempt > 0) {
      // Was this commit applied after all (an earlier try, or this one's lost answer)?
      auto applied = AppliedAt(seq, give_up);
      if (applied.ok() && *applied) return **applied;
      if (unanswered && applied.ok() && SystemClock::now() < give_up) continue;  // not applied: send again
    }
    if (!resp.ok()) return resp.status();
    return FailedChecks(*resp, checked);
  }
}

absl::StatusOr<std::optional<int64_t>> EtcdStore::AppliedAt(const std::string& seq,
                                                             std::chrono::system_clock::time_point until) const {
  etcdserverpb::RangeRequest req;
  req.set_key(marker_key_);
  auto marker = Call(*kv_, &etcdserverpb::KV::Stub::Range, req, Retry::kSafe, until);
  if (!marker.ok()) return marker.status();
  if (marker->kvs_size() == 0 || marker->kvs(0).value() != seq) return std::nullopt;
  return marker->kvs(0).mod_revision();
}

absl::Status EtcdStore::FailedChecks(const etcdserverpb::TxnResponse& resp, const std::vector<const Write*>& checked) {
  // The failure branch read every checked key in the same transaction: name the first one
  // that does not match.
  for (size_t i = 0; i < checked.size() && i < static_cast<size_t>(resp.responses_size()); ++i) {
    const auto& found = resp.responses(static_cast<int>(i)).response_range();
    const int64_t current = found.kvs_size() > 0 ? found.kvs(0).mod_revision() : 0;
    const Write& w = *checked[i];
    if (w.expected_version && *w.expected_version != current) return VersionConflict(w.key, *w.expected_version, current);
    if (!w.value && current == 0) return MissingForDelete(w.key);
  }
  return absl::AbortedError("the etcd transaction failed its checks; retry");
}

absl::StatusOr<std::optional<Entry>> EtcdStore::Get(const Key& key) {
  auto resp = Range(ResourceKey(key), "", 0, 0);
  if (!resp.ok()) return resp.status();
  if (resp->kvs_size() == 0) return std::nullopt;
  auto entry = EntryOf(resp->kvs(0));
  if (!entry.ok()) return entry.status();
  return *std::move(entry);
}

absl::StatusOr<std::vector<Entry>> EtcdStore::List(std::optional<Kind> kind, const std::string& ns) {
  std::string prefix = options_.prefix + "resources/";
  if (kind) prefix += resources::KindName(*kind) + "/" + (ns.empty() ? "" : ns + "/");
  const std::string end = PrefixEnd(prefix);
  std::vector<Entry> out;
  // Pages of one consistent revision: the first page's.
  int64_t revision = 0;
  std::string from = prefix;
  for (;;) {
    auto page = Range(from, end, revision, 1000);
    if (!page.ok()) return page.status();
    if (revision == 0) revision = page->header().revision();  // etcd's header says now, not the page's
    for (const auto& kv : page->kvs()) {
      auto entry = EntryOf(kv);
      if (!entry.ok()) return entry.status();
      if (ns.empty() || entry->key.ns == ns) out.push_back(*std::move(entry));
    }
    if (!page->more() || page->kvs_size() == 0) break;
    from = page->kvs(page->kvs_size() - 1).key() + '\0';
  }
  // etcd orders keys bytewise ("a-b/" before "a/"); the contract orders by kind name,
  // namespace and name.
  std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) {
    return std::tie(resources::KindName(a.key.kind), a.key.ns, a.key.name) <
           std::tie(resources::KindName(b.key.kind), b.key.ns, b.key.name);
  });
  return out;
}

int64_t EtcdStore::Revision() { return revision_.load(); }

absl::StatusOr<std::vector<Event>> EtcdStore::ChangesSince(int64_t since, int64_t max_revisions) {
  std::lock_guard lock(mu_);
  if (since < floor_) {
    return absl::OutOfRangeError(Cat("revision ", since, " is no longer in the change log (oldest kept: ", floor_ + 1, ")"));
  }
  auto it = std::upper_bound(log_.begin(), log_.end(), since, [](int64_t r, const Event& e) { return r < e.revision; });
  std::vector<Event> out;
  int64_t revisions = 0;
  for (; it != log_.end(); ++it) {
    if (out.empty() || out.back().revision != it->revision) {
      if (++revisions > max_revisions) break;
    }
    out.push_back(*it);
  }
  return out;
}

Store::Subscription EtcdStore::Subscribe(std::function<void(int64_t)> fn) { return notifier_.Subscribe(std::move(fn)); }

void EtcdStore::AwaitSeen(int64_t revision) {
  std::unique_lock lock(mu_);
  if (!seen_.wait_for(lock, options_.timeout, [&] { return stopping_ || revision_.load() >= revision; })) {
    log::Warn("etcd's watch is behind a commit", {{"revision", std::to_string(revision)},
                                                   {"watched", std::to_string(revision_.load())}});
  }
}

void EtcdStore::Follow() {
  int failures = 0;
  for (;;) {
    if (Stopping()) return;
    failures = FollowOnce() ? 0 : std::min(failures + 1, 5);
    const auto delay = std::chrono::milliseconds(100 << failures);
    if (failures > 0) {
      log::Warn("etcd watch interrupted; resuming", {{"from_revision", std::to_string(revision_.load() + 1)},
                                                     {"in_ms", std::to_string(delay.count())}});
    }
    std::unique_lock lock(mu_);
    seen_.wait_for(lock, delay, [&] { return stopping_; });
  }
}

bool EtcdStore::FollowOnce() {
  grpc::ClientContext ctx;
  ctx.set_wait_for_ready(true);
  // Without it a member cut off from the others would keep the stream open and silent.
  ctx.AddMetadata("hasleader", "true");
  {
    std::lock_guard lock(mu_);
    if (stopping_) return false;
    watching_ = &ctx;
  }
  auto stream = watch_->Watch(&ctx);
  etcdserverpb::WatchRequest req;
  auto* create = req.mutable_create_request();
  create->set_key(options_.prefix + "resources/");
  create->set_range_end(PrefixEnd(create->key()));
  create->set_start_revision(revision_.load() + 1);
  create->set_prev_kv(true);  // deletes carry the value they removed
  create->set_progress_notify(true);
  bool healthy = false;
  etcdserverpb::WatchResponse resp;
  if (stream->Write(req)) {
    while (stream->Read(&resp)) {
      if (resp.compact_revision() != 0) {
        // The revisions we missed are compacted away: consumers re-list.
        auto now = Range(options_.prefix, PrefixEnd(options_.prefix), 0, 1);
        if (now.ok()) Reset(now->header().revision(), Cat("etcd compacted revision ", resp.compact_revision()));
        healthy = now.ok();
        break;
      }
      if (resp.canceled()) {
        log::Warn("etcd cancelled the watch", {{"reason", resp.cancel_reason()}});
        break;
      }
      healthy = true;
      Append(resp);
    }
  }
  ctx.TryCancel();
  const grpc::Status st = stream->Finish();
  {
    std::lock_guard lock(mu_);
    watching_ = nullptr;
    if (stopping_) return true;
  }
  if (!st.ok() && st.error_code() != grpc::StatusCode::CANCELLED) {
    log::Warn("etcd watch ended", {{"error", st.error_message()}});
  }
  return healthy;
}

void EtcdStore::Append(const etcdserverpb::WatchResponse& resp) {
  int64_t seen = 0;
  {
    std::lock_guard lock(mu_);
    for (const mvccpb::Event& ev : resp.events()) {
      const bool put = ev.type() == mvccpb::Event::PUT;
      auto entry = EntryOf(put || !ev.has_prev_kv() ? ev.kv() : ev.prev_kv());
      if (!entry.ok()) {
        log::Warn("skipping a change in etcd", {{"error", std::string(entry.status().message())}});
        continue;
      }
      entry->resource_version = ev.kv().mod_revision();
      if (log_.empty() || log_.back().revision != ev.kv().mod_revision()) ++log_revisions_;
      log_.push_back(Event{ev.kv().mod_revision(), put ? Event::Type::kPut : Event::Type::kDelete, *std::move(entry)});
    }
    // A progress notice (no events) says every change up to its revision was sent.
    const int64_t upto = resp.events_size() > 0 ? resp.events(resp.events_size() - 1).kv().mod_revision()
                         : resp.created()     ? 0
                                              : resp.header().revision();
    if (upto > revision_.load()) {
      revision_ = upto;
      seen = upto;
    }
    // Keep the last log_revisions revisions that changed resources (etcd's revision also
    // counts secrets and live values, which are not in the log).
    while (log_revisions_ > options_.log_revisions) {
      floor_ = log_.front().revision;
      while (!log_.empty() && log_.front().revision == floor_) log_.pop_front();
      --log_revisions_;
    }
  }
  if (seen == 0) return;
  seen_.notify_all();
  notifier_.Notify(seen);
}

void EtcdStore::Reset(int64_t revision, const std::string& why) {
  log::Warn("the change log starts again; watchers re-list", {{"reason", why}, {"revision", std::to_string(revision)}});
  {
    std::lock_guard lock(mu_);
    log_.clear();
    log_revisions_ = 0;
    floor_ = revision;
    revision_ = revision;
  }
  seen_.notify_all();
  notifier_.Notify(revision);
}

absl::StatusOr<std::optional<std::string>> EtcdStore::GetSecret(const std::string& name) {
  auto resp = Range(SecretKey(name), "", 0, 0);
  if (!resp.ok()) return resp.status();
  if (resp->kvs_size() == 0) return std::nullopt;
  return resp->kvs(0).value();
}

absl::StatusOr<bool> EtcdStore::CreateSecret(const std::string& name, const std::string& value, int64_t expires_unix) {
  int64_t lease = 0;
  if (expires_unix > 0) {
    const int64_t ttl = expires_unix - std::time(nullptr);
    if (ttl <= 0) {  // expired as it is made: nothing to keep, but a live one of that name wins
      auto existing = GetSecret(name);
      if (!existing.ok()) return existing.status();
      return !existing->has_value();
    }
    // etcd drops the secret when its lease ends.
    auto granted = GrantLease(ttl);
    if (!granted.ok()) return granted.status();
    lease = *granted;
  }
  auto resp = Call(*kv_, &etcdserverpb::KV::Stub::Txn, PutTxn(SecretKey(name), value, lease, true), Retry::kNever);
  if (lease != 0 && (!resp.ok() || !resp->succeeded())) Revoke(lease, std::chrono::system_clock::now() + options_.timeout);
  if (!resp.ok()) return resp.status();
  return resp->succeeded();
}

absl::Status EtcdStore::PutSecret(const std::string& name, const std::string& value) {
  etcdserverpb::PutRequest put;
  put.set_key(SecretKey(name));
  put.set_value(value);
  return Call(*kv_, &etcdserverpb::KV::Stub::Put, put).status();
}

absl::StatusOr<std::map<std::string, Store::Secret>> EtcdStore::ListSecrets() {
  const std::string prefix = SecretKey("");
  auto resp = Range(prefix, PrefixEnd(prefix), 0, 0);
  if (!resp.ok()) return resp.status();
  std::map<std::string, Secret> out;
  for (const auto& kv : resp->kvs()) {
    Secret secret{kv.value(), 0};
    if (kv.lease() != 0) {
      // An expiring secret: its lease says how long it has left.
      etcdserverpb::LeaseTimeToLiveRequest req;
      req.set_id(kv.lease());
      auto left = Call(*lease_stub_, &etcdserverpb::Lease::Stub::LeaseTimeToLive, req);
      if (!left.ok()) return left.status();
      if (left->ttl() <= 0) continue;
      secret.expires_unix = std::time(nullptr) + left->ttl();
    }
    out.emplace(kv.key().substr(prefix.size()), std::move(secret));
  }
  return out;
}

absl::Status EtcdStore::DeleteSecret(const std::string& name) {
  etcdserverpb::DeleteRangeRequest del;
  del.set_key(SecretKey(name));
  // Not repeated: a repeat could remove a secret created since (another apply's claim).
  return Call(*kv_, &etcdserverpb::KV::Stub::DeleteRange, del, Retry::kNever).status();
}

std::string EtcdStore::LiveKey(const std::string& name) const { return Cat(options_.prefix, "live/", name); }

absl::StatusOr<int64_t> EtcdStore::LiveLease() {
  if (lease_ != 0) return lease_;
  auto granted = GrantLease(options_.live_ttl.count());
  if (!granted.ok()) return granted.status();
  lease_ = *granted;
  return lease_;
}

absl::StatusOr<int64_t> EtcdStore::GrantLease(int64_t ttl_seconds) const {
  etcdserverpb::LeaseGrantRequest grant;
  grant.set_ttl(ttl_seconds);
  // A repeated grant only leaves a lease nobody keeps alive, which expires.
  auto granted = Call(*lease_stub_, &etcdserverpb::Lease::Stub::LeaseGrant, grant);
  if (!granted.ok()) return granted.status();
  return granted->id();
}

absl::StatusOr<bool> EtcdStore::CreateLiveLocked(const std::string& name, const std::string& value) {
  auto lease = LiveLease();
  if (!lease.ok()) return lease.status();
  // Only if free: another replica's value stays.
  auto resp = Call(*kv_, &etcdserverpb::KV::Stub::Txn, PutTxn(LiveKey(name), value, *lease, true), Retry::kNever);
  if (!resp.ok()) {
    // The lease ended between two keep-alives: the keeper writes everything again.
    if (resp.status().code() == absl::StatusCode::kNotFound) lease_ = 0, rewrite_ = true;
    return resp.status();
  }
  if (resp->succeeded()) live_[name] = LiveValue{value, true};
  return resp->succeeded();
}

absl::Status EtcdStore::PutLive(const std::map<std::string, std::string>& values) {
  std::lock_guard lock(live_mu_);
  return PutLiveLocked(values);
}

absl::Status EtcdStore::PutLiveLocked(const std::map<std::string, std::string>& values) {
  auto lease = LiveLease();
  if (!lease.ok()) return lease.status();
  // Transactions of many puts: a change that touches thousands of agents' status costs
  // tens of round trips, not thousands.
  etcdserverpb::TxnRequest batch;
  const size_t live_prefix = LiveKey("").size();
  auto flush = [&]() -> absl::Status {
    if (batch.success_size() == 0) return absl::OkStatus();
    auto resp = Call(*kv_, &etcdserverpb::KV::Stub::Txn, batch);
    if (!resp.ok()) {
      // The lease ended between two keep-alives: the keeper writes everything again.
      if (resp.status().code() == absl::StatusCode::kNotFound) lease_ = 0, rewrite_ = true;
      return resp.status();
    }
    for (const auto& op : batch.success()) {
      live_[op.request_put().key().substr(live_prefix)] = LiveValue{op.request_put().value(), false};
    }
    batch.Clear();
    return absl::OkStatus();
  };
  for (const auto& [name, value] : values) {
    auto* put = batch.add_success()->mutable_request_put();
    put->set_key(LiveKey(name));
    put->set_value(value);
    put->set_lease(*lease);
    if (batch.success_size() >= static_cast<int>(kWritesPerCommit)) {
      if (auto st = flush(); !st.ok()) return st;
    }
  }
  return flush();
}

absl::StatusOr<bool> EtcdStore::CreateLive(const std::string& name, const std::string& value) {
  std::lock_guard lock(live_mu_);
  if (live_.count(name)) return false;
  return CreateLiveLocked(name, value);
}

absl::Status EtcdStore::DeleteLive(const std::string& name) {
  std::lock_guard lock(live_mu_);
  if (!live_.count(name)) return absl::OkStatus();
  // Only this process's value: a repeated delete must not remove one another replica
  // wrote since.
  etcdserverpb::TxnRequest txn;
  Compare* mine = txn.add_compare();
  mine->set_key(LiveKey(name));
  mine->set_target(Compare::LEASE);
  mine->set_lease(lease_);
  txn.add_success()->mutable_request_delete_range()->set_key(LiveKey(name));
  auto resp = Call(*kv_, &etcdserverpb::KV::Stub::Txn, txn);
  if (!resp.ok()) return resp.status();
  live_.erase(name);
  return absl::OkStatus();
}

absl::StatusOr<std::map<std::string, std::string>> EtcdStore::ListLive(const std::string& prefix) {
  const std::string from = LiveKey(prefix);
  auto resp = Range(from, PrefixEnd(from), 0, 0);
  if (!resp.ok()) return resp.status();
  std::map<std::string, std::string> out;
  const size_t skip = LiveKey("").size();
  for (const auto& kv : resp->kvs()) out.emplace(kv.key().substr(skip), kv.value());
  return out;
}

bool EtcdStore::Stopping() {
  std::lock_guard lock(mu_);
  return stopping_;
}

void EtcdStore::KeepAlive() {
  int64_t lease = 0;
  {
    std::lock_guard lock(live_mu_);
    lease = lease_;
  }
  // Not under live_mu_: a keep-alive may wait for etcd.
  if (lease != 0 && !KeepAliveOnce(lease)) {
    log::Warn("the lease of this control plane's live values expired; writing them again",
              {{"lease", std::to_string(lease)}});
    std::lock_guard lock(live_mu_);
    if (lease_ == lease) lease_ = 0, rewrite_ = true;
  }
  std::lock_guard lock(live_mu_);
  if (rewrite_) rewrite_ = !WriteAllLive();
}

void EtcdStore::Revoke(int64_t lease, std::chrono::system_clock::time_point until) const {
  etcdserverpb::LeaseRevokeRequest revoke;
  revoke.set_id(lease);
  Call(*lease_stub_, &etcdserverpb::Lease::Stub::LeaseRevoke, revoke, Retry::kNever, until).IgnoreError();
}

bool EtcdStore::WriteAllLive() {
  const std::map<std::string, LiveValue> values = live_;
  // Shared values in batches; exclusive ones one by one, each only if still free.
  std::map<std::string, std::string> shared;
  for (const auto& [name, v] : values) {
    if (!v.exclusive) shared.emplace(name, v.value);
  }
  if (!PutLiveLocked(shared).ok()) return false;  // tried again on the next turn
  for (const auto& [name, v] : values) {
    if (!v.exclusive) continue;
    if (Stopping()) return false;
    auto wrote = CreateLiveLocked(name, v.value);
    if (!wrote.ok()) return false;
    if (!*wrote) live_.erase(name);  // another replica took it meanwhile
  }
  return true;
}

bool EtcdStore::KeepAliveOnce(int64_t lease) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + options_.timeout);
  auto stream = lease_stub_->LeaseKeepAlive(&ctx);
  etcdserverpb::LeaseKeepAliveRequest req;
  req.set_id(lease);
  etcdserverpb::LeaseKeepAliveResponse resp;
  const bool answered = stream->Write(req) && stream->Read(&resp);
  stream->WritesDone();
  ctx.TryCancel();
  (void)stream->Finish();
  // No answer (etcd is away): the lease may still live; only a TTL of 0 says it is gone.
  return !answered || resp.ttl() > 0;
}

}  // namespace meshplug::control_plane::store
