// Unit tests of the splitting helpers: split_even, choose_granule, ExtraCursor and split_heads.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "common/error.h"
#include "partition/even_split.h"
#include "partition/head_split.h"

namespace shardlm {
namespace {

void expect_partition(const std::vector<Range>& r, int64_t total) {
  int64_t at = 0;
  for (const Range& x : r) {
    EXPECT_EQ(x.begin, at);
    EXPECT_GE(x.end, x.begin);
    at = x.end;
  }
  EXPECT_EQ(at, total);
}

TEST(SplitEven, ContiguousBalancedForManyShapes) {
  for (int64_t total : {0, 1, 7, 16, 100, 2112, 21504, 262144}) {
    for (int parts = 1; parts <= 17; ++parts) {
      for (int first = 0; first < parts; first += 3) {
        const std::vector<Range> r = split_even(total, parts, 1, first);
        ASSERT_EQ(static_cast<int>(r.size()), parts);
        expect_partition(r, total);
        int64_t lo = INT64_MAX, hi = 0;
        for (const Range& x : r) {
          lo = std::min(lo, x.size());
          hi = std::max(hi, x.size());
        }
        EXPECT_LE(hi - lo, 1) << total << " over " << parts;
      }
    }
  }
}

TEST(SplitEven, GranulesKeepMultiples) {
  const std::vector<Range> r = split_even(21504, 5, 32, 0);
  expect_partition(r, 21504);
  for (const Range& x : r) {
    EXPECT_EQ(x.begin % 32, 0);
    EXPECT_EQ(x.size() % 32, 0);
  }
  // 672 granules over 5: 135, 135, 134, 134, 134.
  EXPECT_EQ(r[0].size(), 135 * 32);
  EXPECT_EQ(r[1].size(), 135 * 32);
  EXPECT_EQ(r[2].size(), 134 * 32);
}

TEST(SplitEven, ExtrasStartAtFirstExtraAndWrap) {
  // 10 over 4: two extras, given to parts 3 and 0.
  const std::vector<Range> r = split_even(10, 4, 1, 3);
  EXPECT_EQ(r[0].size(), 3);
  EXPECT_EQ(r[1].size(), 2);
  EXPECT_EQ(r[2].size(), 2);
  EXPECT_EQ(r[3].size(), 3);
  expect_partition(r, 10);
}

TEST(SplitEven, RejectsBadArguments) {
  EXPECT_THROW(split_even(10, 0), Error);
  EXPECT_THROW(split_even(-1, 2), Error);
  EXPECT_THROW(split_even(10, 2, 0), Error);
  EXPECT_THROW(split_even(10, 2, 3), Error);  // not a multiple of the granule
}

TEST(ChooseGranule, FallsBackToOne) {
  EXPECT_EQ(choose_granule(21504, 16, 32), 32);
  EXPECT_EQ(choose_granule(256, 8, 32), 32);
  EXPECT_EQ(choose_granule(256, 9, 32), 1);   // fewer granules than parts
  EXPECT_EQ(choose_granule(100, 2, 32), 1);   // not a multiple
}

TEST(ExtraCursor, BalancesExtrasOverManySplits) {
  for (int parts = 1; parts <= 16; ++parts) {
    ExtraCursor cursor(parts);
    std::vector<int64_t> totals(parts, 0);
    for (int layer = 0; layer < 61; ++layer) {
      const std::vector<Range> r = split_even(128, parts, 1, cursor.next(128));
      for (int w = 0; w < parts; ++w) totals[w] += r[w].size();
    }
    const auto [lo, hi] = std::minmax_element(totals.begin(), totals.end());
    EXPECT_LE(*hi - *lo, 1) << parts << " parts";
  }
}

TEST(SplitHeads, WholeGroupsWhileWorkersAtMostKvHeads) {
  // 31B sliding layers: 32 query heads over 16 KV heads, 5 workers -> groups 4,3,3,3,3.
  const std::vector<HeadShare> s = split_heads(32, 16, 5, false);
  ASSERT_EQ(s.size(), 5u);
  EXPECT_EQ(s[0].kv_heads.size(), 4);
  EXPECT_EQ(s[0].q_heads.begin, 0);
  EXPECT_EQ(s[0].q_heads.end, 8);
  EXPECT_EQ(s[1].kv_heads.begin, 4);
  EXPECT_EQ(s[1].q_heads.begin, 8);
  EXPECT_EQ(s[4].q_heads.end, 32);
  for (const HeadShare& h : s) {
    EXPECT_EQ(h.kv_seq_count, 1);
    EXPECT_EQ(h.kv_sharers, 1);
  }
}

TEST(SplitHeads, SequenceSplitWhenWorkersExceedKvHeads) {
  // 31B full layers: 32 query heads over 4 KV heads, 6 workers -> KV heads 0 and 1 shared by 2.
  const std::vector<HeadShare> s = split_heads(32, 4, 6, true);
  const int expected_kv[] = {0, 0, 1, 1, 2, 3};
  const int expected_count[] = {2, 2, 2, 2, 1, 1};
  const int expected_index[] = {0, 1, 0, 1, 0, 0};
  for (int w = 0; w < 6; ++w) {
    EXPECT_EQ(s[w].kv_heads.begin, expected_kv[w]) << w;
    EXPECT_EQ(s[w].kv_heads.size(), 1);
    EXPECT_EQ(s[w].kv_seq_count, expected_count[w]) << w;
    EXPECT_EQ(s[w].kv_seq_index, expected_index[w]) << w;
    EXPECT_EQ(s[w].q_heads.size(), expected_count[w] == 2 ? 4 : 8);
    EXPECT_EQ(s[w].q_heads.begin / 8, expected_kv[w]);
  }
}

TEST(SplitHeads, SlidingSharersDuplicateInsteadOfSplitting) {
  const std::vector<HeadShare> s = split_heads(8, 1, 3, false);  // E2B-like: 1 KV head
  for (const HeadShare& h : s) {
    EXPECT_EQ(h.kv_heads.begin, 0);
    EXPECT_EQ(h.kv_seq_count, 1);
    EXPECT_EQ(h.kv_sharers, 3);
  }
  EXPECT_EQ(s[0].q_heads.size(), 3);
  EXPECT_EQ(s[2].q_heads.end, 8);
}

TEST(SplitHeads, RejectsMoreWorkersThanQueryHeads) {
  try {
    split_heads(16, 2, 17, true);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("17 workers"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("16 query heads"), std::string::npos) << e.what();
  }
  EXPECT_THROW(split_heads(10, 4, 2, false), Error);  // 10 query heads do not group over 4
}

}  // namespace
}  // namespace shardlm
