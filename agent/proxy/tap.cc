#include "agent/proxy/tap.h"

#include <boost/asio/post.hpp>
#include <cstdio>

#include "common/random.h"
#include "common/strings.h"

namespace meshplug::agent::proxy {

TapHub::Subscription::Subscription(TapFilter filter, boost::asio::any_io_executor executor)
    : filter_(std::move(filter)),
      wake_(executor, boost::asio::steady_timer::time_point::max()),
      tokens_(filter_.max_per_second),
      refilled_(std::chrono::steady_clock::now()) {}

std::deque<std::string> TapHub::Subscription::Take() {
  std::lock_guard lock(mu_);
  return std::exchange(queue_, {});
}

bool TapHub::Subscription::Offer(const TapRecord& r, const std::string& json, std::chrono::steady_clock::time_point now) {
  if (!filter_.method.empty() && r.method != filter_.method) return true;
  if (!r.path.starts_with(filter_.path_prefix)) return true;
  if (filter_.sample < 1.0 && static_cast<double>(RandomU64() % 1000000) >= filter_.sample * 1000000) return true;
  {
    std::lock_guard lock(mu_);
    const double per_second = filter_.max_per_second;
    tokens_ = std::min(per_second, tokens_ + per_second * std::chrono::duration<double>(now - refilled_).count());
    refilled_ = now;
    if (tokens_ < 1 || queue_.size() >= kQueueLimit) return false;
    tokens_ -= 1;
    queue_.push_back(json);
  }
  // The subscriber's executor runs the wake-up: the timer is not thread-safe.
  boost::asio::post(wake_.get_executor(), [self = shared_from_this()] { self->wake_.cancel(); });
  return true;
}

std::shared_ptr<TapHub::Subscription> TapHub::Subscribe(TapFilter filter, boost::asio::any_io_executor executor) {
  filter.max_per_second = std::clamp<uint32_t>(filter.max_per_second, 1, kMaxPerSecond);
  filter.sample = std::clamp(filter.sample, 0.0, 1.0);
  auto subscription = std::make_shared<Subscription>(std::move(filter), std::move(executor));
  std::lock_guard lock(mu_);
  subscriptions_.push_back(subscription);
  subscribers_.store(static_cast<int>(subscriptions_.size()), std::memory_order_relaxed);
  return subscription;
}

void TapHub::Unsubscribe(const std::shared_ptr<Subscription>& subscription) {
  std::lock_guard lock(mu_);
  std::erase(subscriptions_, subscription);
  subscribers_.store(static_cast<int>(subscriptions_.size()), std::memory_order_relaxed);
}

void TapHub::Publish(const TapRecord& record) {
  const auto now = std::chrono::steady_clock::now();
  const std::string json = Json(record);
  std::vector<std::shared_ptr<Subscription>> subscriptions;
  {
    std::lock_guard lock(mu_);
    subscriptions = subscriptions_;
  }
  for (const auto& s : subscriptions) {
    if (!s->Offer(record, json, now)) dropped_.fetch_add(1, std::memory_order_relaxed);
  }
}

std::string TapHub::Json(const TapRecord& r) {
  char latency[32];
  std::snprintf(latency, sizeof latency, "%.3f", r.seconds * 1000);
  std::vector<std::string> plugins;
  for (std::string_view p : r.plugins) plugins.push_back(JsonQuote(p));
  const plugins::TrafficParties& p = r.parties;
  return Cat("{\"direction\":\"", r.inbound ? "inbound" : "outbound", "\",\"method\":", JsonQuote(r.method),
             ",\"authority\":", JsonQuote(r.authority), ",\"path\":", JsonQuote(r.path), ",\"status\":", r.status,
             ",\"latency_ms\":", latency, ",\"src\":{\"namespace\":", JsonQuote(p.src_namespace),
             ",\"workload\":", JsonQuote(p.src_workload), ",\"service_account\":", JsonQuote(p.src_service_account),
             "},\"dst\":{\"namespace\":", JsonQuote(p.dst_namespace), ",\"service\":", JsonQuote(p.dst_service),
             ",\"workload\":", JsonQuote(p.dst_workload), "},\"route\":", JsonQuote(r.route),
             ",\"peer\":", JsonQuote(r.peer), ",\"plugins\":[", Join(plugins, ","), "],\"answered_by\":",
             JsonQuote(r.answered_by), "}");
}

}  // namespace meshplug::agent::proxy
