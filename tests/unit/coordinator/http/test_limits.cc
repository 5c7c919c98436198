// The pieces behind the servers' limits and key checks, alone: the token-bucket rate limiter on an
// injected clock, the connection limit's slots, the constant-time comparison and ApiKeySet, and the
// TLS context's refusals of bad certificate / key files.
#include <gtest/gtest.h>

#include <thread>

#include "common/connection_limit.h"
#include "common/constant_time.h"
#include "common/error.h"
#include "common/rate_limiter.h"
#include "common/tls.h"
#include "tls_test_support.h"

namespace shardlm {
namespace {

struct FakeClock {
  double now = 1000;
  RateLimiter::Clock clock() {
    return [this] { return now; };
  }
};

TEST(RateLimiter, BurstThenRefillsContinuously) {
  FakeClock t;
  RateLimiter limiter(6, t.clock());  // burst 6, one token every 10 s
  for (int i = 0; i < 6; ++i) EXPECT_TRUE(limiter.acquire("a").allowed) << i;
  RateLimiter::Decision d = limiter.acquire("a");
  EXPECT_FALSE(d.allowed);
  EXPECT_NEAR(d.retry_after_s, 10.0, 1e-9);
  t.now += 4;
  d = limiter.acquire("a");
  EXPECT_FALSE(d.allowed);
  EXPECT_NEAR(d.retry_after_s, 6.0, 1e-9);  // 0.4 of a token is there: 6 s more
  t.now += 6;
  EXPECT_TRUE(limiter.acquire("a").allowed);
  EXPECT_FALSE(limiter.acquire("a").allowed);
  // A long pause refills up to the burst, not beyond.
  t.now += 3600;
  for (int i = 0; i < 6; ++i) EXPECT_TRUE(limiter.acquire("a").allowed) << i;
  EXPECT_FALSE(limiter.acquire("a").allowed);
}

TEST(RateLimiter, ClientsHaveTheirOwnBuckets) {
  FakeClock t;
  RateLimiter limiter(2, t.clock());
  EXPECT_TRUE(limiter.acquire("key:0").allowed);
  EXPECT_TRUE(limiter.acquire("key:0").allowed);
  EXPECT_FALSE(limiter.acquire("key:0").allowed);
  EXPECT_TRUE(limiter.acquire("key:1").allowed);
  EXPECT_TRUE(limiter.acquire("ip:127.0.0.1").allowed);
  EXPECT_EQ(limiter.tracked_clients(), 3u);
}

TEST(RateLimiter, RefusedRequestsTakeNothing) {
  FakeClock t;
  RateLimiter limiter(60, t.clock());  // one token a second
  for (int i = 0; i < 60; ++i) ASSERT_TRUE(limiter.acquire("a").allowed);
  // Hammering while empty does not push the next token further out.
  for (int i = 0; i < 100; ++i) ASSERT_FALSE(limiter.acquire("a").allowed);
  t.now += 1.0;
  EXPECT_TRUE(limiter.acquire("a").allowed);
}

TEST(RateLimiter, ClockGoingBackDoesNotAddTokens) {
  FakeClock t;
  RateLimiter limiter(1, t.clock());
  EXPECT_TRUE(limiter.acquire("a").allowed);
  t.now -= 500;
  EXPECT_FALSE(limiter.acquire("a").allowed);
  t.now += 500 + 59;
  EXPECT_FALSE(limiter.acquire("a").allowed);
  t.now += 1;
  EXPECT_TRUE(limiter.acquire("a").allowed);
}

TEST(RateLimiter, ForgetsClientsWhoseBucketIsFull) {
  FakeClock t;
  RateLimiter limiter(60, t.clock());
  for (int i = 0; i < 5000; ++i) ASSERT_TRUE(limiter.acquire("ip:" + std::to_string(i)).allowed);
  EXPECT_GT(limiter.tracked_clients(), 1000u);
  t.now += 61;  // every bucket is full again
  EXPECT_TRUE(limiter.acquire("ip:new").allowed);
  EXPECT_LE(limiter.tracked_clients(), 1u);
}

TEST(RateLimiter, FractionalRatesAndBadRates) {
  FakeClock t;
  RateLimiter limiter(0.5, t.clock());  // burst of one, one token every 2 minutes
  EXPECT_TRUE(limiter.acquire("a").allowed);
  RateLimiter::Decision d = limiter.acquire("a");
  EXPECT_FALSE(d.allowed);
  EXPECT_NEAR(d.retry_after_s, 120.0, 1e-9);
  EXPECT_THROW(RateLimiter(0), Error);
  EXPECT_THROW(RateLimiter(-3), Error);
}

TEST(RateLimiter, ThreadSafe) {
  RateLimiter limiter(1000);
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) allowed += limiter.acquire("shared").allowed ? 1 : 0;
    });
  }
  for (auto& t : threads) t.join();
  // 1000 in the bucket, refilled by at most a few while the threads run.
  EXPECT_GE(allowed.load(), 1000);
  EXPECT_LE(allowed.load(), 1100);
}

TEST(ConnectionLimit, SlotsUpToTheLimit) {
  ConnectionLimit limit(2);
  ConnectionLimit::Slot a = limit.try_acquire();
  ConnectionLimit::Slot b = limit.try_acquire();
  ConnectionLimit::Slot c = limit.try_acquire();
  EXPECT_TRUE(a);
  EXPECT_TRUE(b);
  EXPECT_FALSE(c);
  EXPECT_EQ(limit.open(), 2u);
  a.release();
  a.release();  // idempotent
  EXPECT_EQ(limit.open(), 1u);
  {
    ConnectionLimit::Slot d = limit.try_acquire();
    EXPECT_TRUE(d);
    EXPECT_FALSE(limit.try_acquire());
    ConnectionLimit::Slot moved = std::move(d);
    EXPECT_EQ(limit.open(), 2u);
  }  // released by the destructor
  EXPECT_EQ(limit.open(), 1u);
  b = ConnectionLimit::Slot();  // assigning releases
  EXPECT_EQ(limit.open(), 0u);
}

TEST(ConnectionLimit, ZeroMeansNoLimitAndSlotsOutliveTheLimit) {
  ConnectionLimit::Slot kept;
  {
    ConnectionLimit unlimited(0);
    std::vector<ConnectionLimit::Slot> slots;
    for (int i = 0; i < 1000; ++i) slots.push_back(unlimited.try_acquire());
    for (const auto& s : slots) ASSERT_TRUE(s);
    EXPECT_EQ(unlimited.open(), 1000u);
    kept = std::move(slots.front());
  }
  kept.release();  // the limit is gone; releasing is still fine
}

TEST(ConstantTime, EqualOnlyForEqualStrings) {
  EXPECT_TRUE(constant_time_equal("", ""));
  EXPECT_TRUE(constant_time_equal("sk-abc", "sk-abc"));
  EXPECT_FALSE(constant_time_equal("sk-abc", "sk-abd"));
  EXPECT_FALSE(constant_time_equal("sk-abc", "sk-ab"));
  EXPECT_FALSE(constant_time_equal("sk-abc", "sk-abcd"));
  EXPECT_FALSE(constant_time_equal("", "x"));
  const std::string with_nul("a\0b", 3);
  EXPECT_FALSE(constant_time_equal(with_nul, "a"));
  EXPECT_TRUE(constant_time_equal(with_nul, std::string("a\0b", 3)));
  // SHA-256 of "abc" (FIPS 180-2 example).
  const Sha256Digest d = sha256("abc");
  EXPECT_EQ(d[0], 0xba);
  EXPECT_EQ(d[31], 0xad);
}

TEST(ApiKeySet, FindsEveryKeyAndOnlyThem) {
  ApiKeySet keys({"key-one", "", "key-two", "key-three"});
  EXPECT_EQ(keys.size(), 3u);  // the empty one is left out
  EXPECT_EQ(keys.find("key-one"), 0);
  EXPECT_EQ(keys.find("key-two"), 1);
  EXPECT_EQ(keys.find("key-three"), 2);
  EXPECT_EQ(keys.find(""), -1);
  EXPECT_EQ(keys.find("key-tw"), -1);
  EXPECT_EQ(keys.find("key-two "), -1);
  EXPECT_EQ(keys.find("KEY-ONE"), -1);
  EXPECT_TRUE(keys.contains("key-three"));
  EXPECT_FALSE(ApiKeySet().contains("anything"));
  EXPECT_TRUE(ApiKeySet().empty());
}

TEST(TlsContext, RefusesBadFilesNamingThem) {
  tls_testing::TlsFiles files;
  const tls_testing::CertFiles good = files.self_signed("server");
  const tls_testing::CertFiles other = files.self_signed("other");
  EXPECT_NO_THROW(tls::server_context(good.cert, good.key));
  auto message = [](const std::function<void()>& f) -> std::string {
    try {
      f();
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  const std::string missing = files.path("missing.pem");
  std::string m = message([&] { tls::server_context(missing, good.key); });
  EXPECT_NE(m.find(missing), std::string::npos) << m;
  EXPECT_NE(m.find("cannot be read"), std::string::npos) << m;
  const std::string garbage = files.write("garbage.pem", "this is not PEM\n");
  m = message([&] { tls::server_context(garbage, good.key); });
  EXPECT_NE(m.find("TLS certificate file " + garbage), std::string::npos) << m;
  m = message([&] { tls::server_context(good.cert, garbage); });
  EXPECT_NE(m.find("TLS key file " + garbage), std::string::npos) << m;
  m = message([&] { tls::server_context(good.cert, other.key); });
  EXPECT_NE(m.find("TLS key file " + other.key + " does not match the certificate in " + good.cert), std::string::npos) << m;
  m = message([&] { tls::client_context(garbage, true); });
  EXPECT_NE(m.find("TLS CA file " + garbage), std::string::npos) << m;
  EXPECT_NO_THROW(tls::client_context("", true));  // the system's CAs
  EXPECT_NO_THROW(tls::client_context("", false));
}

}  // namespace
}  // namespace shardlm
