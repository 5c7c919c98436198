// The summation order shared by both communicators: rank order, any aliasing of the output.
#include <gtest/gtest.h>

#include <vector>

#include "comm/rank_order_sum.h"
#include "tests/unit/comm/comm_test_data.h"

namespace shardlm::comm {
namespace {

using testing::expected_sum;
using testing::rank_values;
using testing::same_bits;

TEST(RankOrderSum, MatchesTheSpecifiedOrderAcrossBlocksWhereverTheOutputIs) {
  for (int ranks : {1, 2, 3, 7}) {
    for (size_t count : {size_t{0}, size_t{1}, size_t{1023}, size_t{1024}, size_t{1025}, size_t{5000}}) {
      const auto want = expected_sum<float>(ranks, count, 17);
      for (int out_at = -1; out_at < ranks; ++out_at) {  // -1: a separate output buffer
        std::vector<std::vector<float>> data;
        std::vector<const float*> parts;
        for (int r = 0; r < ranks; ++r) data.push_back(rank_values<float>(r, count, 17));
        for (int r = 0; r < ranks; ++r) parts.push_back(data[r].data());
        std::vector<float> separate(count);
        float* out = out_at < 0 ? separate.data() : data[out_at].data();
        sum_in_rank_order(parts.data(), ranks, count, out);
        std::vector<float> got(out, out + count);
        EXPECT_TRUE(same_bits(got, want)) << ranks << " ranks, " << count << " values, output " << out_at;
      }
    }
  }
}

TEST(RankOrderSum, StridedLayoutIncludingManyRanks) {
  for (int ranks : {2, 5, 70}) {
    const size_t count = 300, stride = 301;
    std::vector<double> packed(stride * ranks);
    for (int r = 0; r < ranks; ++r) {
      auto v = rank_values<double>(r, count, 4);
      std::copy(v.begin(), v.end(), packed.begin() + r * stride);
    }
    std::vector<double> out(count);
    sum_in_rank_order_strided(packed.data(), stride, ranks, count, out.data());
    EXPECT_TRUE(same_bits(out, expected_sum<double>(ranks, count, 4))) << ranks;
  }
}

TEST(RankOrderSum, OrderIsObservableSoTheTestsAboveCanFail) {
  // Summing the same inputs in reverse rank order gives other bits for these values.
  const int ranks = 5;
  const size_t count = 1000;
  auto forward = expected_sum<float>(ranks, count, 8);
  std::vector<float> backward = rank_values<float>(ranks - 1, count, 8);
  for (int r = ranks - 2; r >= 0; --r) {
    auto v = rank_values<float>(r, count, 8);
    for (size_t i = 0; i < count; ++i) backward[i] += v[i];
  }
  EXPECT_FALSE(same_bits(forward, backward));
}

}  // namespace
}  // namespace shardlm::comm
