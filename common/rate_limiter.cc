#include "common/rate_limiter.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "common/error.h"

namespace shardlm {

double RateLimiter::steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

RateLimiter::RateLimiter(double per_minute, Clock clock)
    : per_minute_(per_minute), capacity_(std::max(1.0, per_minute)), per_second_(per_minute / 60.0), clock_(std::move(clock)) {
  if (!(per_minute > 0) || !std::isfinite(per_minute)) fail("rate limit must be a positive number of requests per minute (got {})", per_minute);
  if (!clock_) fail("rate limiter needs a clock");
}

double RateLimiter::refilled(const Bucket& b, double now) const {
  return std::min(capacity_, b.tokens + std::max(0.0, now - b.at) * per_second_);
}

void RateLimiter::forget_full(double now) {
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    if (refilled(it->second, now) >= capacity_) {
      it = buckets_.erase(it);
    } else {
      ++it;
    }
  }
  // Many clients at once: look again when the table has doubled, or a minute later.
  prune_at_ = std::max<size_t>(1024, 2 * buckets_.size());
  pruned_at_ = now;
}

RateLimiter::Decision RateLimiter::acquire(const std::string& client) {
  const double now = clock_();
  std::lock_guard lock(mutex_);
  if (buckets_.size() >= prune_at_ || (!buckets_.empty() && now - pruned_at_ >= 60)) forget_full(now);
  auto [it, fresh] = buckets_.try_emplace(client, Bucket{capacity_, now});
  Bucket& b = it->second;
  if (!fresh) {
    b.tokens = refilled(b, now);
    b.at = std::max(b.at, now);
  }
  Decision d;
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return d;
  }
  d.allowed = false;
  d.retry_after_s = std::max(1e-3, (1.0 - b.tokens) / per_second_);
  return d;
}

size_t RateLimiter::tracked_clients() const {
  std::lock_guard lock(mutex_);
  return buckets_.size();
}

}  // namespace shardlm
