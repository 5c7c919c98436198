#include "bench/read_bandwidth.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <iterator>
#include <vector>

namespace shardlm::bench {
namespace {

// Every float of the buffer is read exactly once, whatever the call size, stream count and threads:
// the buffer holds ones, so the sum counts the floats read.
TEST(ReadInCalls, ReadsEveryFloatOnce) {
  constexpr int64_t kFloats = 32 * 1000;
  const AlignedBuffer<float> buf = read_buffer(kFloats * sizeof(float));
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    for (int64_t call : {32, 96, 1024, 4000, 32000, 64000}) {
      for (int streams : kReadStreamCounts) {
        EXPECT_EQ(read_in_calls(buf.data(), kFloats, call, streams), static_cast<float>(kFloats))
            << "calls of " << call << " floats, " << streams << " streams, " << threads << " threads";
      }
    }
  }
}

TEST(CallReadRates, OnePositiveRatePerStreamCountForAnyCallSize) {
  const AlignedBuffer<float> buf = read_buffer(size_t{8} << 20);
  for (size_t call_bytes : {size_t{1}, size_t{4096}, size_t{1} << 20, size_t{64} << 20}) {
    const std::vector<double> rates = call_read_rates(buf, 2, call_bytes);
    ASSERT_EQ(rates.size(), std::size(kReadStreamCounts)) << call_bytes;
    for (double rate : rates) {
      EXPECT_TRUE(std::isfinite(rate)) << call_bytes;
      EXPECT_GT(rate, 0.0) << call_bytes;
    }
  }
}

}  // namespace
}  // namespace shardlm::bench
