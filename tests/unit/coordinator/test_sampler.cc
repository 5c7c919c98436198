#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>

#include "common/error.h"
#include "coordinator/sampler.h"

namespace shardlm {
namespace {

TEST(Sampler, GreedyPicksArgmaxLowestIdOnTies) {
  std::vector<float> logits = {0.1f, 3.0f, -1.0f, 3.0f};
  Sampler s({0.0f, 0, 1.0f, 0.0f, 1});
  EXPECT_EQ(s.sample(logits.data(), 4), 1);
}

TEST(Sampler, DeterministicForSeed) {
  std::vector<float> logits(100);
  for (int i = 0; i < 100; ++i) logits[i] = static_cast<float>((i * 37) % 11) * 0.3f;
  Sampler a({1.0f, 0, 1.0f, 0.0f, 42}), b({1.0f, 0, 1.0f, 0.0f, 42}), c({1.0f, 0, 1.0f, 0.0f, 43});
  int differ = 0;
  for (int i = 0; i < 50; ++i) {
    int x = a.sample(logits.data(), 100);
    EXPECT_EQ(x, b.sample(logits.data(), 100));
    differ += x != c.sample(logits.data(), 100);
  }
  EXPECT_GT(differ, 0);
}

TEST(Sampler, TopKTopPMinPRestrictCandidates) {
  std::vector<float> logits = {5.0f, 4.0f, 3.0f, 0.0f, -2.0f};
  Sampler k2({1.0f, 2, 1.0f, 0.0f, 7});
  for (int i = 0; i < 200; ++i) EXPECT_LT(k2.sample(logits.data(), 5), 2);
  // p(0) = 0.665, p(1) = 0.245: top_p 0.8 keeps the first two.
  Sampler p({1.0f, 0, 0.8f, 0.0f, 7});
  for (int i = 0; i < 200; ++i) EXPECT_LT(p.sample(logits.data(), 5), 2);
  // min_p 0.3: keeps tokens with p >= 0.3 * 0.665 -> ids 0 and 1.
  Sampler m({1.0f, 0, 1.0f, 0.3f, 7});
  std::map<int, int> counts;
  for (int i = 0; i < 400; ++i) counts[m.sample(logits.data(), 5)]++;
  EXPECT_EQ(counts.size(), 2u);
  EXPECT_GT(counts[0], counts[1]);
}

TEST(Sampler, RejectsBadParameters) {
  EXPECT_THROW(Sampler({-1.0f, 0, 1.0f, 0.0f, 0}), Error);
  EXPECT_THROW(Sampler({1.0f, -3, 1.0f, 0.0f, 0}), Error);
  EXPECT_THROW(Sampler({1.0f, 0, 0.0f, 0.0f, 0}), Error);
  EXPECT_THROW(Sampler({1.0f, 0, 1.0f, 2.0f, 0}), Error);
}

}  // namespace
}  // namespace shardlm

namespace shardlm {
namespace {

// Sampling from a row's candidates (as the workers send them, split over vocabulary slices) gives
// exactly the token that sampling from the whole row gives, for every mode; the whole row is fetched
// only when the candidates cannot decide.
TEST(Sampler, CandidatesAreExactForEveryMode) {
  const int64_t n = 3000;
  std::mt19937_64 rng(5);
  std::normal_distribution<float> d(0.0f, 2.0f);
  std::vector<float> logits(n);
  for (float& x : logits) x = d(rng);
  const std::vector<SamplingParams> modes = {
      {0.0f, 0, 1.0f, 0.0f, 1},  {1.0f, 0, 1.0f, 0.0f, 2},  {0.7f, 40, 1.0f, 0.0f, 3},
      {1.0f, 0, 0.9f, 0.0f, 4},  {1.2f, 0, 1.0f, 0.05f, 5}, {0.8f, 50, 0.95f, 0.02f, 6},
      {2.0f, 0, 0.5f, 0.0f, 7},  {1.0f, 0, 1.0f, 0.3f, 8}};
  for (const SamplingParams& p : modes) {
    Sampler whole(p), parts(p);
    const RowRequest req{candidates_needed(p, -1), p.temperature};
    int64_t fetched = 0;
    for (int i = 0; i < 300; ++i) {
      std::vector<RowCandidates> slices;
      for (int s = 0; s < 3; ++s) {
        const int64_t b = n * s / 3, e = n * (s + 1) / 3;
        slices.push_back(select_row_candidates(logits.data() + b, e - b, b, req));
      }
      const RowCandidates row = merge_row_candidates(slices, req);
      const int32_t expected = whole.sample(logits.data(), n);
      const int32_t got = parts.sample(row, [&](std::vector<float>& out) {
        ++fetched;
        out = logits;
      });
      ASSERT_EQ(got, expected) << "temperature " << p.temperature << " top_k " << p.top_k << " top_p " << p.top_p
                               << " min_p " << p.min_p << " draw " << i;
    }
    EXPECT_EQ(fetched, parts.full_row_fetches());
    // Greedy, top-k and min-p with a high floor never need the whole row.
    if (p.temperature == 0.0f || p.top_k > 0 || p.min_p >= 0.3f) {
      EXPECT_EQ(fetched, 0);
    }
  }
}

// Down to the smallest float temperatures, sampling tends to greedy (a temperature of 1e-10 drew the
// least likely token: the row's log-sum-exp at 1/T overflowed a float), from candidates and from a
// whole row, with and without the other filters.
TEST(Sampler, TinyTemperaturesAreGreedy) {
  const int64_t n = 3000;
  std::mt19937_64 rng(9);
  std::normal_distribution<float> d(0.0f, 3.0f);
  std::vector<float> logits(n);
  for (float& x : logits) x = 20.0f + d(rng);
  const int32_t best = argmax(logits.data(), n);
  for (float t : {1e-4f, 1e-10f, 1e-20f, 1e-38f, 1e-45f}) {
    for (const SamplingParams& p : {SamplingParams{t, 0, 1.0f, 0.0f, 1}, SamplingParams{t, 0, 0.9f, 0.0f, 2},
                                    SamplingParams{t, 0, 1.0f, 0.1f, 3}, SamplingParams{t, 40, 1.0f, 0.0f, 4}}) {
      Sampler whole(p), parts(p);
      const RowRequest req{candidates_needed(p, -1), p.temperature};
      std::vector<RowCandidates> slices;
      for (int s = 0; s < 3; ++s) {
        const int64_t b = n * s / 3, e = n * (s + 1) / 3;
        slices.push_back(select_row_candidates(logits.data() + b, e - b, b, req));
      }
      const RowCandidates row = merge_row_candidates(slices, req);
      EXPECT_TRUE(std::isfinite(row.lse_t_rel)) << "temperature " << t;
      for (int i = 0; i < 20; ++i) {
        EXPECT_EQ(whole.sample(logits.data(), n), best) << "temperature " << t;
        EXPECT_EQ(parts.sample(row, [&](std::vector<float>& out) { out = logits; }), best) << "temperature " << t;
      }
    }
  }
}

TEST(Sampler, CandidateCountCoversTopKAndLogprobs) {
  EXPECT_EQ(candidates_needed({0.0f, 0, 1.0f, 0.0f, 0}, -1), 1);
  EXPECT_EQ(candidates_needed({0.0f, 0, 1.0f, 0.0f, 0}, 5), 6);
  EXPECT_EQ(candidates_needed({1.0f, 200, 1.0f, 0.0f, 0}, 5), 200);
  EXPECT_GE(candidates_needed({1.0f, 0, 0.9f, 0.0f, 0}, -1), 64);
}

}  // namespace
}  // namespace shardlm
