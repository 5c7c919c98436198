// Choosing the GEMV prefetch tuning by timing the candidates (kernels/gemv_tuning.h).
#include "kernels/gemv_tuning.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "kernels/qgemm.h"
#include "tests/unit/kernels/test_util.h"

namespace shardlm {
namespace {

using testing::ScopedIsa;
using testing::ScopedThreads;

// Whether the format's kernels run at the AVX-512 level on this CPU (where the tuning applies).
bool at_avx512(WeightFormat format) {
  if (format == WeightFormat::kInt8 || format == WeightFormat::kQ4) return qgemm::kernel_isa(active_isa()) == Isa::kAvx512;
  return active_isa() == Isa::kAvx512;
}

TEST(GemvTuning, CandidatesAreTheVendorsAndStreams) {
  const std::vector<PrefetchTuning> expect = {vendor_prefetch_tuning(), PrefetchTuning::kStreams};
  EXPECT_EQ(gemv_tuning_candidates(), expect);
}

// Every format is timed under each candidate (small matrices here, so the rates are cache rates),
// the fastest is set, and the rates are positive; below the AVX-512 level nothing is measured and
// the tuning is left as it was.
TEST(GemvTuning, SetsTheFastestCandidate) {
  if (prefetch_tuning_from_env()) GTEST_SKIP() << "SHARDLM_PREFETCH is set";
  for (int threads : {1, 2}) {
    ScopedThreads scoped(threads);
    for (WeightFormat format : {WeightFormat::kF32, WeightFormat::kBF16, WeightFormat::kInt8, WeightFormat::kQ4}) {
      const GemvTuningChoice choice = calibrate_gemv_tuning(format, int64_t{4} << 20, 3);
      if (!at_avx512(format)) {
        EXPECT_FALSE(choice.measured);
        EXPECT_TRUE(choice.rates.empty());
        continue;
      }
      ASSERT_TRUE(choice.measured) << weight_format_name(format);
      ASSERT_EQ(choice.rates.size(), gemv_tuning_candidates().size());
      double best = 0.0;
      for (const GemvTuningRate& r : choice.rates) {
        EXPECT_GT(r.bytes_per_second, 0.0);
        best = std::max(best, r.bytes_per_second);
      }
      const auto chosen = std::find_if(choice.rates.begin(), choice.rates.end(),
                                       [&](const GemvTuningRate& r) { return r.tuning == choice.tuning; });
      ASSERT_NE(chosen, choice.rates.end());
      EXPECT_EQ(chosen->bytes_per_second, best);
      EXPECT_EQ(prefetch_tuning(), choice.tuning);
    }
  }
  clear_prefetch_tuning();
}

TEST(GemvTuning, NothingIsMeasuredBelowAvx512) {
  if (prefetch_tuning_from_env()) GTEST_SKIP() << "SHARDLM_PREFETCH is set";
  ScopedIsa isa(Isa::kAvx2);
  set_prefetch_tuning(PrefetchTuning::kIntel);
  for (WeightFormat format : {WeightFormat::kBF16, WeightFormat::kQ4}) {
    const GemvTuningChoice choice = calibrate_gemv_tuning(format, int64_t{4} << 20, 1);
    EXPECT_FALSE(choice.measured);
    EXPECT_EQ(choice.tuning, PrefetchTuning::kIntel);
    EXPECT_EQ(prefetch_tuning(), PrefetchTuning::kIntel);
  }
  clear_prefetch_tuning();
}

}  // namespace
}  // namespace shardlm
