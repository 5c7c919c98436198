#include "worker/step_candidates.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <random>
#include <vector>

#include "kernels/elementwise.h"

namespace shardlm {
namespace {

// Every row's candidates are exactly those of the row selected alone, whatever the thread count and
// however the rows' requests differ.
TEST(StepCandidates, EachRowAsAloneAtAnyThreadCount) {
  constexpr int64_t kSlice = 5000, kRows = 7, kOffset = 1000;
  std::mt19937 rng(3);
  std::normal_distribution<float> dist(0.0f, 3.0f);
  std::vector<float> logits(static_cast<size_t>(kSlice * kRows));
  for (float& v : logits) v = dist(rng);
  logits[17] = logits[18];  // a tie, broken by token id
  std::vector<RowRequest> requests;
  for (int64_t r = 0; r < kRows; ++r) requests.push_back(RowRequest{static_cast<int32_t>(1 + 13 * r), r % 3 == 0 ? 0.0f : 0.5f + 0.25f * r});
  const int before = omp_get_max_threads();
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    const std::vector<RowCandidates> got = select_step_candidates(logits.data(), kSlice, kOffset, requests);
    ASSERT_EQ(got.size(), requests.size());
    for (int64_t r = 0; r < kRows; ++r) {
      const RowCandidates want = select_row_candidates(logits.data() + r * kSlice, kSlice, kOffset, requests[r], &exp_sums);
      const RowCandidates& c = got[static_cast<size_t>(r)];
      ASSERT_EQ(c.top.size(), want.top.size()) << "row " << r << ", " << threads << " threads";
      for (size_t i = 0; i < c.top.size(); ++i) {
        EXPECT_EQ(c.top[i].token, want.top[i].token);
        EXPECT_EQ(c.top[i].logit, want.top[i].logit);
      }
      EXPECT_EQ(c.bound, want.bound);
      EXPECT_EQ(c.lse, want.lse);
      EXPECT_EQ(c.lse_t_rel, want.lse_t_rel);
    }
  }
  omp_set_num_threads(before);
}

TEST(StepCandidates, NoRowsNoCandidates) {
  EXPECT_TRUE(select_step_candidates(nullptr, 100, 0, {}).empty());
}

}  // namespace
}  // namespace shardlm
