// The scheduling units of a GEMV read as several streams (schedule_units, gemv_streams): every panel
// computed exactly once whatever the chunks the units are taken in, groups of panels a fixed distance
// apart, outputs zeroed or accumulated, and nothing written past the last valid column.
#include "kernels/gemm_task.h"

#include <gtest/gtest.h>

#include <vector>

namespace shardlm {
namespace {

constexpr int64_t kCols = 16;

// A panel's "product": column c of panel g gets 1000 g + c + 1.
float product(int64_t g, int c) { return static_cast<float>(1000 * g + c + 1); }

TEST(GemvStreams, EveryPanelOnceInGroupsOfPanelsOneDistanceApart) {
  for (int streams = 2; streams <= kMaxGemvStreams; ++streams) {
    for (int64_t n_panels = 1; n_panels <= 23; ++n_panels) {
      for (const int last_valid : {16, 5}) {
        for (const bool accumulate : {false, true}) {
          for (const int64_t chunk : {1, 2, 3, 100}) {
            const int64_t n = (n_panels - 1) * kCols + last_valid;
            std::vector<float> y(static_cast<size_t>(n + 8), 7.0f);  // 8 guard values past the end
            std::vector<int> calls(static_cast<size_t>(n_panels), 0);
            const int64_t distance = n_panels / streams;
            const int64_t units = schedule_units(1, streams, n_panels);
            ASSERT_EQ(units, n_panels - (streams - 1) * distance);
            EXPECT_EQ(schedule_units(2, streams, n_panels), n_panels);  // batches: panels
            EXPECT_EQ(schedule_units(1, 1, n_panels), n_panels);        // one stream: panels
            const std::string what = "streams=" + std::to_string(streams) + " n_panels=" + std::to_string(n_panels) +
                                     " valid=" + std::to_string(last_valid) + " accumulate=" + std::to_string(accumulate) +
                                     " chunk=" + std::to_string(chunk);
            auto group = [&](int64_t g, int64_t d, float* ys, int valid, int64_t next) {
              EXPECT_EQ(d, distance) << what;
              EXPECT_LT(g, distance) << what;
              EXPECT_EQ(next, g + 1 < distance ? g + 1 : -1) << what;
              for (int s = 0; s < streams; ++s) {
                const int64_t panel = g + s * d;
                ++calls[static_cast<size_t>(panel)];
                const int cols = s + 1 == streams ? valid : static_cast<int>(kCols);
                EXPECT_EQ(cols, panel + 1 == n_panels ? last_valid : 16) << what;
                for (int c = 0; c < cols; ++c) ys[s * kCols + c] += product(panel, c);
              }
            };
            auto single = [&](int64_t g) {
              EXPECT_GE(g, streams * distance) << what;
              ++calls[static_cast<size_t>(g)];
              const int cols = g + 1 == n_panels ? last_valid : static_cast<int>(kCols);
              for (int c = 0; c < cols; ++c) y[static_cast<size_t>(g * kCols + c)] += product(g, c);
            };
            for (int64_t u0 = 0; u0 < units; u0 += chunk) {
              gemv_streams(streams, u0, std::min(u0 + chunk, units), n_panels, last_valid, y.data(), accumulate, group,
                           single);
            }
            for (int64_t g = 0; g < n_panels; ++g) ASSERT_EQ(calls[static_cast<size_t>(g)], 1) << what << " panel " << g;
            for (int64_t i = 0; i < n; ++i) {
              const float want = (accumulate ? 7.0f : 0.0f) + product(i / kCols, static_cast<int>(i % kCols));
              ASSERT_EQ(y[static_cast<size_t>(i)], want) << what << " column " << i;
            }
            for (int64_t i = n; i < n + 8; ++i) ASSERT_EQ(y[static_cast<size_t>(i)], 7.0f) << what << " guard " << i;
          }
        }
      }
    }
  }
}

TEST(GemvStreams, DecodeTileWidthIsOnePanelWhenReadAsStreams) {
  EXPECT_EQ(decode_tile_width(1, 2, 4, 8), 1);
  EXPECT_EQ(decode_tile_width(1, 1, 4, 8), 4);
  EXPECT_EQ(decode_tile_width(1, 1, 0, 8), 8);
  EXPECT_EQ(decode_tile_width(3, 2, 4, 8), 8);
}

}  // namespace
}  // namespace shardlm
