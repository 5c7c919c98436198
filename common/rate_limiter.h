// Per-client request rate limit: a token bucket per client name (an API key's id, or a client
// address) holding up to `per_minute` tokens (the burst; at least one), refilled continuously at per_minute / 60
// tokens a second; each request takes one token. Clients whose bucket has refilled completely are
// forgotten (every minute, and whenever the table has doubled), so the table stays small. Thread-safe; the clock can be injected (tests).
#pragma once

#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>

namespace shardlm {

class RateLimiter {
 public:
  // Monotonic seconds.
  using Clock = std::function<double()>;
  static double steady_seconds();

  // per_minute > 0; throws Error otherwise.
  explicit RateLimiter(double per_minute, Clock clock = steady_seconds);

  struct Decision {
    bool allowed = true;
    double retry_after_s = 0;  // when refused: seconds until a token is there again (> 0)
  };
  // Takes a token of `client`'s bucket when there is one.
  Decision acquire(const std::string& client);

  double per_minute() const { return per_minute_; }
  size_t tracked_clients() const;  // buckets held now (full ones may already be forgotten)

 private:
  struct Bucket {
    double tokens = 0;
    double at = 0;  // the clock when `tokens` was computed
  };
  double refilled(const Bucket& b, double now) const;
  void forget_full(double now);

  const double per_minute_;
  const double capacity_;
  const double per_second_;
  Clock clock_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Bucket> buckets_;
  size_t prune_at_ = 1024;  // table size that triggers forgetting full buckets
  double pruned_at_ = 0;    // the clock when full buckets were last forgotten
};

}  // namespace shardlm
