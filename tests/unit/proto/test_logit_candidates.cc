#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>
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
    EXPECT_NEAR(c.lse_t_rel, std::log(st) - all[0].logit / 0.7, 1e-4);
  }
}

// The maximum and the top candidates of rows of every length up to 40 (the maximum anywhere, a
// length that is not a multiple of the maximum's eight chains), with infinities, signed zeros and
// ties: exactly the best of the row, and the log-sum-exp exact; a row with NaNs (which make its sums
// NaN) still gets its number of candidates.
TEST(LogitCandidates, AnyLengthWithNaNsInfinitiesAndZeros) {
  const float specials[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 2.5f, 2.5f};
  std::mt19937_64 rng(9);
  for (int64_t n = 1; n <= 40; ++n) {
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<float> logits = random_logits(n, 100 * n + trial, trial % 3);
      for (float& x : logits) {
        x *= 60.0f;  // up to ~+-600: exp overflows unless taken from the row's true maximum
        if (rng() % 5 == 0) x = specials[rng() % std::size(specials)];
      }
      const bool has_pos_inf = std::count(logits.begin(), logits.end(), INFINITY) > 0;
      for (int32_t keep : {1, 3, 8, 41}) {
        const RowCandidates c = select_row_candidates(logits.data(), n, 7, RowRequest{keep, 0.5f});
        std::vector<TokenLogit> finite_or_inf;
        for (int64_t i = 0; i < n; ++i) {
          if (!std::isnan(logits[i])) finite_or_inf.push_back({logits[i], static_cast<int32_t>(7 + i)});
        }
        std::sort(finite_or_inf.begin(), finite_or_inf.end(), better_candidate);
        ASSERT_EQ(c.top.size(), std::min<size_t>(keep, n)) << "n " << n << " trial " << trial;
        if (static_cast<int64_t>(finite_or_inf.size()) < n) continue;  // NaNs
        for (size_t i = 0; i < c.top.size(); ++i) {
          EXPECT_EQ(c.top[i].token, finite_or_inf[i].token) << "n " << n << " trial " << trial << " keep " << keep;
        }
        if (finite_or_inf.front().logit == -INFINITY) continue;
        if (has_pos_inf) continue;  // exp(inf - inf): the sums are not numbers
        double s = 0;
        const double m = finite_or_inf.front().logit;
        for (const TokenLogit& t : finite_or_inf) s += std::exp(static_cast<double>(t.logit) - m);
        EXPECT_NEAR(c.lse, m + std::log(s), 1e-4) << "n " << n << " trial " << trial;
      }
    }
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
      EXPECT_NEAR(merged.lse_t_rel, whole.lse_t_rel, 1e-4);
      // Every token above the bound is among the candidates.
      for (int64_t i = 0; i < n; ++i) {
        if (logits[i] <= merged.bound) continue;
        const bool found = std::any_of(merged.top.begin(), merged.top.end(), [&](const TokenLogit& t) { return t.token == i; });
        EXPECT_TRUE(found) << "token " << i;
      }
    }
  }
}

// A target token's logit comes from the slice that holds it (penalised as the row), and the slices'
// counts of logits at least as great add up to its rank in the whole row.
TEST(LogitCandidates, TargetLogitAndRankFromSlices) {
  const int64_t n = 5003;
  const std::vector<float> logits = random_logits(n, 5, 1);
  for (int32_t target : {0, 1700, 5002}) {
    RowRequest req{4, 1.0f};
    req.target = target;
    std::vector<RowCandidates> slices;
    int64_t count = 0;
    for (int p = 0; p < 3; ++p) {
      const int64_t b = n * p / 3, e = n * (p + 1) / 3;
      slices.push_back(select_row_candidates(logits.data() + b, e - b, b, req));
      EXPECT_EQ(std::isnan(slices.back().target_logit), target < b || target >= e);
      count += count_at_least(logits.data() + b, e - b, logits[static_cast<size_t>(target)]);
    }
    const RowCandidates merged = merge_row_candidates(slices, req);
    EXPECT_EQ(merged.target_logit, logits[static_cast<size_t>(target)]);
    EXPECT_EQ(count, std::count_if(logits.begin(), logits.end(), [&](float x) { return x >= logits[static_cast<size_t>(target)]; }));
    EXPECT_GE(count, 1);
  }
  RowRequest none{4, 1.0f};
  EXPECT_TRUE(std::isnan(select_row_candidates(logits.data(), n, 0, none).target_logit));
  RowRequest penalised{4, 1.0f};
  penalised.target = 7;
  penalised.penalties.tokens = {7};
  penalised.penalties.counts = {-1};
  penalised.penalties.biases = {3.0f};
  EXPECT_EQ(select_row_candidates(logits.data(), n, 0, penalised).target_logit, logits[7] + 3.0f);
}

// Penalties change exactly the listed tokens, by vLLM's formulas: the repetition penalty divides a
// positive logit and multiplies a negative one (prompt and output tokens), then frequency times the
// output count and presence (output tokens only) are subtracted.
TEST(LogitPenalties, ApplyToTheListedTokensOnly) {
  std::vector<float> logits = {2.0f, -1.0f, 0.5f, 3.0f, -2.0f, 1.0f};
  LogitPenalties p;
  p.repetition = 2.0f;
  p.presence = 0.5f;
  p.frequency = 0.25f;
  p.tokens = {11, 12, 14, 20};  // token ids from 10: 11, 12 and 14 are here; 20 is another slice's
  p.counts = {0, 3, 1, 5};
  apply_penalties(logits.data(), static_cast<int64_t>(logits.size()), 10, p);
  EXPECT_EQ(logits[0], 2.0f);
  EXPECT_EQ(logits[1], -2.0f);                        // prompt only: -1 * 2
  EXPECT_EQ(logits[2], 0.25f - 0.75f - 0.5f);          // 0.5 / 2, 3 times in the output
  EXPECT_EQ(logits[3], 3.0f);
  EXPECT_EQ(logits[4], -4.0f - 0.25f - 0.5f);          // -2 * 2, once in the output
  EXPECT_EQ(logits[5], 1.0f);
  LogitPenalties boost;  // negative presence and frequency raise a token
  boost.presence = -1.0f;
  boost.frequency = -0.5f;
  boost.tokens = {10};
  boost.counts = {2};
  apply_penalties(logits.data(), static_cast<int64_t>(logits.size()), 10, boost);
  EXPECT_EQ(logits[0], 2.0f + 1.0f + 1.0f);
  LogitPenalties bias;  // added first; a bias-only token (count -1) takes no repetition penalty
  bias.repetition = 2.0f;
  bias.tokens = {10, 11, 13};
  bias.counts = {-1, 0, 1};
  bias.biases = {1.5f, -2.0f, 0.0f};
  bias.presence = 1.0f;
  apply_penalties(logits.data(), static_cast<int64_t>(logits.size()), 10, bias);
  EXPECT_EQ(logits[0], 4.0f + 1.5f);
  EXPECT_EQ(logits[1], (-2.0f - 2.0f) * 2.0f);
  EXPECT_EQ(logits[3], 3.0f / 2.0f - 1.0f);
  // A tiny or huge repetition penalty leaves the logits finite (the float range's ends).
  std::vector<float> row = {20.0f, -20.0f};
  LogitPenalties extreme;
  extreme.repetition = 1e-40f;
  extreme.tokens = {0, 1};
  extreme.counts = {0, 0};
  apply_penalties(row.data(), 2, 0, extreme);
  EXPECT_EQ(row[0], std::numeric_limits<float>::max());
  EXPECT_EQ(row[1], -20.0f * 1e-40f);
  extreme.repetition = 3e38f;
  row = {20.0f, -20.0f};
  apply_penalties(row.data(), 2, 0, extreme);
  EXPECT_EQ(row[0], 20.0f / 3e38f);
  EXPECT_EQ(row[1], -std::numeric_limits<float>::max());
}

// Penalised rows: each slice penalises its own tokens, and the merged candidates equal those of the
// whole row with the penalties applied; the engine's row itself is not changed.
TEST(LogitPenalties, SlicesMergeToThePenalisedWholeRow) {
  const int64_t n = 4001;
  const std::vector<float> logits = random_logits(n, 21);
  RowRequest req{40, 0.8f};
  // Penalise the 30 best tokens of the plain row (and some others).
  const RowCandidates plain = select_row_candidates(logits.data(), n, 0, RowRequest{30, 0.8f});
  std::vector<int32_t> ids;
  for (const TokenLogit& t : plain.top) ids.push_back(t.token);
  for (int32_t t = 5; t < n; t += 97) ids.push_back(t);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  req.penalties.repetition = 1.5f;
  req.penalties.presence = 0.3f;
  req.penalties.frequency = 0.7f;
  req.penalties.tokens = ids;
  for (size_t i = 0; i < ids.size(); ++i) req.penalties.counts.push_back(static_cast<int32_t>(i % 3));
  std::vector<float> penalised = logits;
  apply_penalties(penalised.data(), n, 0, req.penalties);
  const RowCandidates want = select_row_candidates(penalised.data(), n, 0, RowRequest{40, 0.8f});
  EXPECT_LT(want.top.front().logit, plain.top.front().logit);
  for (int parts : {1, 2, 5}) {
    std::vector<RowCandidates> slices;
    for (int p = 0; p < parts; ++p) {
      const int64_t b = n * p / parts, e = n * (p + 1) / parts;
      slices.push_back(select_row_candidates(logits.data() + b, e - b, b, req));
    }
    const RowCandidates merged = merge_row_candidates(slices, req);
    ASSERT_EQ(merged.top.size(), want.top.size());
    for (size_t i = 0; i < want.top.size(); ++i) {
      EXPECT_EQ(merged.top[i].token, want.top[i].token) << "parts " << parts << " i " << i;
      EXPECT_EQ(merged.top[i].logit, want.top[i].logit) << "parts " << parts << " i " << i;
    }
    EXPECT_NEAR(merged.lse, want.lse, 1e-4);
    EXPECT_NEAR(merged.lse_t_rel, want.lse_t_rel, 1e-4);
  }
  EXPECT_EQ(logits, random_logits(n, 21));
}

}  // namespace
}  // namespace shardlm
