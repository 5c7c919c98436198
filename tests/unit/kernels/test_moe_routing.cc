// MoE routing: softmax → top-k → renormalise → per-expert scale, against a direct double
// computation; ties go to the lower expert id; argument errors.
#include "kernels/moe_routing.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "common/error.h"
#include "tests/unit/kernels/test_util.h"

namespace shardlm {
namespace {

TEST(MoeRoute, MatchesSoftmaxTopKRenormaliseScale) {
  const int64_t rows = 20, experts = 128, k = 8;
  const auto logits = testing::random_vector(static_cast<size_t>(rows * experts), 1, -6.0f, 6.0f);
  const auto scale = testing::random_vector(static_cast<size_t>(experts), 2, 0.5f, 1.5f);
  std::vector<int32_t> ids(rows * k);
  std::vector<float> w(rows * k), w_noscale(rows * k);
  std::vector<int32_t> ids2(rows * k);
  moe_route(logits.data(), rows, experts, k, scale.data(), ids.data(), w.data());
  moe_route(logits.data(), rows, experts, k, nullptr, ids2.data(), w_noscale.data());
  EXPECT_EQ(ids, ids2);
  for (int64_t r = 0; r < rows; ++r) {
    const float* l = logits.data() + r * experts;
    std::vector<int32_t> order(experts);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return l[a] > l[b]; });
    double top_sum = 0.0;
    for (int64_t t = 0; t < k; ++t) top_sum += std::exp(static_cast<double>(l[order[t]]));
    double check = 0.0;
    for (int64_t t = 0; t < k; ++t) {
      ASSERT_EQ(ids[r * k + t], order[t]) << "row " << r << " rank " << t;
      // softmax-then-renormalise == softmax over the chosen logits
      const double p = std::exp(static_cast<double>(l[order[t]])) / top_sum;
      EXPECT_NEAR(w_noscale[r * k + t], p, 1e-6);
      EXPECT_NEAR(w[r * k + t], p * scale[order[t]], 2e-6);
      check += w_noscale[r * k + t];
    }
    EXPECT_NEAR(check, 1.0, 1e-6);
  }
}

TEST(MoeRoute, TiesGoToTheLowerExpertId) {
  const std::vector<float> logits = {1.0f, 3.0f, 2.0f, 3.0f, 3.0f, 0.5f};
  std::vector<int32_t> ids(2);
  std::vector<float> w(2);
  moe_route(logits.data(), 1, 6, 2, nullptr, ids.data(), w.data());
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 3}));
  EXPECT_FLOAT_EQ(w[0], 0.5f);
  EXPECT_FLOAT_EQ(w[1], 0.5f);
  std::vector<int32_t> all(6);
  std::vector<float> wall(6);
  moe_route(logits.data(), 1, 6, 6, nullptr, all.data(), wall.data());
  EXPECT_EQ(all, (std::vector<int32_t>{1, 3, 4, 2, 0, 5}));
}

TEST(MoeRoute, RejectsBadArguments) {
  const std::vector<float> logits(4, 0.0f);
  std::vector<int32_t> ids(8);
  std::vector<float> w(8);
  EXPECT_THROW(moe_route(logits.data(), 1, 4, 5, nullptr, ids.data(), w.data()), Error);
  EXPECT_THROW(moe_route(logits.data(), 1, 4, 0, nullptr, ids.data(), w.data()), Error);
  EXPECT_THROW(moe_route(logits.data(), 1, 0, 1, nullptr, ids.data(), w.data()), Error);
  EXPECT_THROW(moe_route(logits.data(), -1, 4, 1, nullptr, ids.data(), w.data()), Error);
}

}  // namespace
}  // namespace shardlm
