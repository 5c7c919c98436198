#include <gtest/gtest.h>

#include <map>

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
