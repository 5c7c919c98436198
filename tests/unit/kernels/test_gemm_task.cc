// The scheduling units of a GEMV read as several streams (schedule_units, gemv_streams): every panel
// computed exactly once whatever the chunks the units are taken in, groups of panels a fixed distance
// apart within one block of the panels (one or several blocks), outputs zeroed or accumulated, and
// nothing written past the last valid column.
#include "kernels/gemm_task.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

namespace shardlm {
namespace {

constexpr int64_t kCols = 16;

// A panel's "product": column c of panel g gets 1000 g + c + 1.
float product(int64_t g, int c) { return static_cast<float>(1000 * g + c + 1); }

// Panel counts around the placement threshold (more than kStreamPlacementMinPanels per stream) and
// byte strides of int8 / q4 panels (k = 5376, 704) besides none.
const std::vector<int64_t> kPanelCounts = [] {
  std::vector<int64_t> counts;
  for (int64_t n = 1; n <= 23; ++n) counts.push_back(n);
  for (const int64_t n : {33, 64, 173, 256, 257, 258, 300, 387, 512, 515, 600}) counts.push_back(n);
  return counts;
}();
constexpr int64_t kPanelBytes[] = {0, 86144, 48448, 6400, 4096};

TEST(GemvStreams, EveryPanelOnceInGroupsOfPanelsOneDistanceApart) {
  for (int streams = 2; streams <= kMaxGemvStreams; ++streams) {
    for (const int64_t n_panels : kPanelCounts) {
      for (const int blocks : {1, 2, 3}) {
        if (blocks > n_panels) continue;  // (a product has at most one block per panel)
        for (const int64_t panel_bytes : kPanelBytes) {
          for (const int last_valid : {16, 5}) {
            for (const bool accumulate : {false, true}) {
              for (const int64_t chunk : {1, 2, 3, 100}) {
                const int64_t n = (n_panels - 1) * kCols + last_valid;
                std::vector<float> y(static_cast<size_t>(n + 8), 7.0f);  // 8 guard values past the end
                std::vector<int> calls(static_cast<size_t>(n_panels), 0);
                // Block b: panels [first[b], first[b + 1]), its streams distance[b] apart.
                std::vector<int64_t> first, distance;
                int64_t want_units = 0;
                for (int b = 0; b <= blocks; ++b) first.push_back(gemv_block_begin(n_panels, blocks, b));
                for (int b = 0; b < blocks; ++b) {
                  const int64_t panels = first[b + 1] - first[b];
                  distance.push_back(gemv_stream_distance(panels, streams, panel_bytes));
                  want_units += panels - (streams - 1) * distance.back();
                }
                auto block_of = [&](int64_t g) {
                  return static_cast<int>(std::upper_bound(first.begin(), first.end(), g) - first.begin()) - 1;
                };
                const int64_t units = schedule_units(1, streams, n_panels, panel_bytes, blocks);
                ASSERT_EQ(units, want_units);
                EXPECT_EQ(schedule_units(2, streams, n_panels, panel_bytes, blocks), n_panels);  // batches: panels
                EXPECT_EQ(schedule_units(1, 1, n_panels, panel_bytes, blocks), n_panels);        // one stream: panels
                const std::string what = "streams=" + std::to_string(streams) + " n_panels=" + std::to_string(n_panels) +
                                         " blocks=" + std::to_string(blocks) + " panel_bytes=" + std::to_string(panel_bytes) +
                                         " valid=" + std::to_string(last_valid) + " accumulate=" + std::to_string(accumulate) +
                                         " chunk=" + std::to_string(chunk);
                auto group = [&](int64_t g, int64_t d, float* ys, int valid, int64_t next) {
                  const int b = block_of(g);
                  EXPECT_EQ(d, distance[b]) << what;
                  EXPECT_LT(g, first[b] + d) << what;  // the first stream's panel
                  EXPECT_EQ(next, g + 1 < first[b] + d ? g + 1 : -1) << what;
                  for (int s = 0; s < streams; ++s) {
                    const int64_t panel = g + s * d;
                    ASSERT_EQ(block_of(panel), b) << what;  // every stream within the block
                    ++calls[static_cast<size_t>(panel)];
                    const int cols = s + 1 == streams ? valid : static_cast<int>(kCols);
                    EXPECT_EQ(cols, panel + 1 == n_panels ? last_valid : 16) << what;
                    for (int c = 0; c < cols; ++c) ys[s * kCols + c] += product(panel, c);
                  }
                };
                auto single = [&](int64_t g) {
                  const int b = block_of(g);
                  EXPECT_GE(g, first[b] + streams * distance[b]) << what;  // left over at the block's end
                  ++calls[static_cast<size_t>(g)];
                  const int cols = g + 1 == n_panels ? last_valid : static_cast<int>(kCols);
                  for (int c = 0; c < cols; ++c) y[static_cast<size_t>(g * kCols + c)] += product(g, c);
                };
                for (int64_t u0 = 0; u0 < units; u0 += chunk) {
                  gemv_streams(streams, u0, std::min(u0 + chunk, units), n_panels, last_valid, y.data(), accumulate, group,
                               single, panel_bytes, blocks);
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
  }
}

TEST(GemvStreams, PlacedStreamsLieClosestToHalfAPageApart) {
  for (int streams = 2; streams <= kMaxGemvStreams; ++streams) {
    for (const int64_t n_panels : kPanelCounts) {
      for (const int64_t panel_bytes : kPanelBytes) {
        const std::string what = "streams=" + std::to_string(streams) + " n_panels=" + std::to_string(n_panels) +
                                 " panel_bytes=" + std::to_string(panel_bytes);
        const int64_t even = n_panels / streams, d = gemv_stream_distance(n_panels, streams, panel_bytes);
        if (panel_bytes == 0 || even <= kStreamPlacementMinPanels) {
          EXPECT_EQ(d, even) << what;
          continue;
        }
        ASSERT_LE(d, even) << what;
        ASSERT_GE(d, even - kStreamPlacementPanels) << what;
        const auto miss = [&](int64_t dist) { return std::abs(dist * panel_bytes % 4096 - 2048); };
        for (int64_t other = even - kStreamPlacementPanels; other <= even; ++other) {
          EXPECT_LE(miss(d), miss(other)) << what << " other " << other;
        }
      }
    }
  }
  // The measured case: q4 panels of the 31B q projection (k = 5376, 512 panels) were an exact
  // multiple of 4 KiB apart (256 x 48448 bytes); placed, 2 KiB and one cache line off one.
  const int64_t q4_stride = 48448;
  EXPECT_EQ(256 * q4_stride % 4096, 0);
  EXPECT_EQ(gemv_stream_distance(512, 2, q4_stride), 253);
  EXPECT_EQ(253 * q4_stride % 4096, 2048 + 64);
}

TEST(GemvStreams, DecodeTileWidthIsOnePanelWhenReadAsStreams) {
  EXPECT_EQ(decode_tile_width(1, 2, 4, 8), 1);
  EXPECT_EQ(decode_tile_width(1, 1, 4, 8), 4);
  EXPECT_EQ(decode_tile_width(1, 1, 0, 8), 8);
  EXPECT_EQ(decode_tile_width(3, 2, 4, 8), 8);
}

}  // namespace
}  // namespace shardlm
