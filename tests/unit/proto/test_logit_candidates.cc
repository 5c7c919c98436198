#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "proto/logit_candidates.h"

namespace shardlm {
namespace {

std::vector<float> random_logits(int64_t n, uint64_t seed, int levels = 0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, 3.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = levels > 0 ? std::round(d(rng) * levels) / levels : d(rng);  // levels: many ties
  return v;
}

TEST(LogitCandidates, SelectMatchesAFullSort) {
  for (int levels : {0, 2}) {
    const std::vector<float> logits = random_logits(1000, 3 + levels, levels);
    const RowCandidates c = select_row_candidates(logits.data(), 1000, 500, RowRequest{37, 0.7f});
    std::vector<TokenLogit> all;
    for (int i = 0; i < 1000; ++i) all.push_back({logits[i], 500 + i});
    std::sort(all.begin(), all.end(), better_candidate);
    ASSERT_EQ(c.top.size(), 37u);
    for (int i = 0; i < 37; ++i) {
      EXPECT_EQ(c.top[i].token, all[i].token);
      EXPECT_EQ(c.top[i].logit, all[i].logit);
    }
    EXPECT_EQ(c.bound, all[36].logit);
    double s = 0, st = 0;
    for (float x : logits) {
      s += std::exp(static_cast<double>(x));
      st += std::exp(static_cast<double>(x) / 0.7);
    }
    EXPECT_NEAR(c.lse, std::log(s), 1e-4);
    EXPECT_NEAR(c.lse_t, std::log(st), 1e-4);
  }
}

TEST(LogitCandidates, WholeRowIsComplete) {
  const std::vector<float> logits = random_logits(10, 1);
  const RowCandidates c = select_row_candidates(logits.data(), 10, 0, RowRequest{64, 1.0f});
  EXPECT_EQ(c.top.size(), 10u);
  EXPECT_TRUE(c.complete());
}

TEST(LogitCandidates, MergingSlicesEqualsSelectingTheWholeRow) {
  for (int levels : {0, 1}) {
    const int64_t n = 5003;
    const std::vector<float> logits = random_logits(n, 11 + levels, levels);
    for (int parts : {2, 3, 7}) {
      const RowRequest req{50, 1.3f};
      std::vector<RowCandidates> slices;
      for (int p = 0; p < parts; ++p) {
        const int64_t b = n * p / parts, e = n * (p + 1) / parts;
        slices.push_back(select_row_candidates(logits.data() + b, e - b, b, req));
      }
      const RowCandidates merged = merge_row_candidates(slices, req);
      const RowCandidates whole = select_row_candidates(logits.data(), n, 0, req);
      ASSERT_EQ(merged.top.size(), whole.top.size());
      for (size_t i = 0; i < whole.top.size(); ++i) {
        EXPECT_EQ(merged.top[i].token, whole.top[i].token) << "parts " << parts << " i " << i;
      }
      EXPECT_NEAR(merged.lse, whole.lse, 1e-4);
      EXPECT_NEAR(merged.lse_t, whole.lse_t, 1e-4);
      // Every token above the bound is among the candidates.
      for (int64_t i = 0; i < n; ++i) {
        if (logits[i] <= merged.bound) continue;
        const bool found = std::any_of(merged.top.begin(), merged.top.end(), [&](const TokenLogit& t) { return t.token == i; });
        EXPECT_TRUE(found) << "token " << i;
      }
    }
  }
}

}  // namespace
}  // namespace shardlm
