#include "agent/xds/update_assembler.h"

#include "common/log.h"
#include "common/strings.h"

namespace meshplug::agent::xds {

void UpdateAssembler::Adopt(const ResourceSet& resources, const std::string& version) {
  running_ = resources;
  running_any_ = true;
  running_version_ = version;
}

void UpdateAssembler::StartStream() {
  received_ = running_;
  tracks_.clear();
  EndBatch();
  incomplete_since_.reset();
  last_missing_.clear();
}

void UpdateAssembler::EndBatch() {
  batch_first_.reset();
  batch_last_.reset();
  warming_until_.reset();
  hold_ = false;
}

Answer UpdateAssembler::AnswerFor(const std::string& type_url, std::optional<std::string> error) const {
  auto it = tracks_.find(type_url);
  const TypeTrack none;
  const TypeTrack& t = it == tracks_.end() ? none : it->second;
  return Answer{type_url, t.nonce, t.version, running_.TypeVersion(type_url), std::move(error)};
}

std::optional<Answer> UpdateAssembler::OnResponse(const std::string& type_url, const std::string& nonce,
                                                  const std::string& version,
                                                  const std::function<absl::Status(ResourceSet&)>& merge,
                                                  Clock::time_point now) {
  TypeTrack& t = tracks_[type_url];
  t.nonce = nonce;
  t.version = version;
  const absl::Status merged = xds_types::FindType(type_url) != nullptr
                                  ? merge(received_)
                                  : absl::InvalidArgumentError(Cat("unknown resource type ", type_url));
  if (!merged.ok()) {
    t.state = State::kRejected;
    const std::string error = Cat(ShortType(type_url), " ", version, ": ", std::string(merged.message()));
    log::Warn("xDS response rejected", {{"type", type_url}, {"error", error}});
    return AnswerFor(type_url, error);
  }
  t.state = State::kPending;
  if (!batch_first_) batch_first_ = now;
  batch_last_ = now;
  // Something new: completeness is checked again.
  incomplete_since_.reset();
  warming_until_.reset();
  hold_ = false;
  return std::nullopt;
}

std::optional<Clock::time_point> UpdateAssembler::SettleAt() const {
  if (!batch_first_) return std::nullopt;
  if (warming_until_) return *warming_until_;
  if (incomplete_since_) return std::nullopt;
  if (hold_) return *batch_first_ + timing_.settle_max;
  return std::min(*batch_last_ + timing_.settle, *batch_first_ + timing_.settle_max);
}

std::optional<Clock::time_point> UpdateAssembler::NextDeadline() const {
  std::optional<Clock::time_point> at = SettleAt();
  if (incomplete_since_) {
    const auto nack_at = *incomplete_since_ + timing_.incomplete_timeout;
    at = at ? std::min(*at, nack_at) : nack_at;
  }
  return at;
}

UpdateAssembler::Due UpdateAssembler::Poll(Clock::time_point now) {
  if (auto settle_at = SettleAt(); settle_at && now >= *settle_at) return Settle(now);
  if (incomplete_since_ && now >= *incomplete_since_ + timing_.incomplete_timeout) return Due{{}, NackIncomplete()};
  return {};
}

UpdateAssembler::Due UpdateAssembler::Settle(Clock::time_point now) {
  if (std::vector<std::string> missing = received_.Missing(/*endpoints=*/false); !missing.empty()) {
    incomplete_since_ = now;
    if (const std::string text = Join(missing, "; "); text != last_missing_) {
      log::Info("xDS waiting for resources", {{"missing", text}});
      last_missing_ = text;
    }
    return {};
  }
  // Clusters whose Endpoints have not arrived wait up to endpoints_warming, unless the
  // agent already runs them without endpoints (known empty: nothing more is coming).
  std::vector<std::string> warming = received_.ClustersWithoutEndpoints();
  std::erase_if(warming, [&](const std::string& cluster) {
    return running_any_ && running_.Of(UrlOf<v1::Cluster>()).count(cluster) &&
           !running_.Of(UrlOf<v1::Endpoints>()).count(cluster);
  });
  if (!warming.empty()) {
    const std::string text = Join(warming, ", ");
    if (now < *batch_first_ + timing_.endpoints_warming) {
      warming_until_ = *batch_first_ + timing_.endpoints_warming;
      if (text != last_missing_) {
        log::Info("xDS waiting for the endpoints of new clusters", {{"clusters", text}});
        last_missing_ = text;
      }
      return {};
    }
    log::Warn("xDS applying with clusters that have no endpoints", {{"clusters", text}});
  }
  warming_until_.reset();
  last_missing_.clear();
  if (!hold_ && now < *batch_first_ + timing_.settle_max) {
    if (std::vector<std::string> extra = received_.Unreferenced(); !extra.empty()) {
      log::Debug("xDS update holds unreferenced resources; waiting for the rest of the push",
                 {{"unreferenced", Join(extra, "; ")}});
      hold_ = true;
      return {};
    }
  }
  Update update{received_, received_.Assemble(), *batch_first_};
  EndBatch();
  if (running_any_ && update.snapshot.version() == running_version_) {
    // The control plane confirms what runs (e.g. the saved snapshot); versions may have moved.
    running_ = received_;
    return Due{{}, Applied(update, std::vector<std::string>{}), /*confirmed=*/true};
  }
  return Due{std::move(update), {}};
}

std::vector<Answer> UpdateAssembler::Applied(const Update& update,
                                             const absl::StatusOr<std::vector<std::string>>& result) {
  const std::string isolated = result.ok() ? Join(*result, "; ") : "";
  if (result.ok()) {
    running_ = update.resources;
    running_any_ = true;
    running_version_ = update.snapshot.version();
  } else {
    log::Warn("xDS update rejected; the previous configuration keeps running",
              {{"version", update.snapshot.version()}, {"error", std::string(result.status().message())}});
  }
  std::vector<Answer> answers;
  for (auto& [type, t] : tracks_) {
    if (result.ok() && !isolated.empty() && type == UrlOf<v1::PluginScript>()) {
      // Applied, but not all of it runs as sent: say so where the cause is.
      t.state = State::kNacked;
      answers.push_back(AnswerFor(type, isolated));
    } else if (result.ok() && (t.state == State::kPending || t.state == State::kNacked)) {
      t.state = State::kAcked;
      answers.push_back(AnswerFor(type, std::nullopt));
    } else if (!result.ok() && t.state == State::kPending) {
      t.state = State::kNacked;
      answers.push_back(AnswerFor(type, std::string(result.status().message())));
    }
  }
  return answers;
}

std::vector<Answer> UpdateAssembler::NackIncomplete() {
  const std::string error = Cat("incomplete configuration, still missing: ", last_missing_);
  log::Warn("xDS update incomplete; NACKed", {{"missing", last_missing_}});
  std::vector<Answer> answers;
  for (auto& [type, t] : tracks_) {
    if (t.state != State::kPending) continue;
    t.state = State::kNacked;
    answers.push_back(AnswerFor(type, error));
  }
  incomplete_since_.reset();
  EndBatch();
  return answers;
}

}  // namespace meshplug::agent::xds
