// slice_byte_ranges against a brute-force byte enumeration on synthetic tensors, and shard_reads
// turned into byte ranges reading exactly the owned bytes.
#include <gtest/gtest.h>

#include <random>
#include <set>
#include <vector>

#include "common/error.h"
#include "partition/tensor_slices.h"

namespace shardlm {
namespace {

TensorInfo make_info(std::vector<int64_t> shape, DType dtype, uint64_t begin) {
  TensorInfo t;
  t.name = "synthetic";
  t.dtype = dtype;
  t.shape = shape;
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  t.begin = begin;
  t.end = begin + n * dtype_size(dtype);
  return t;
}

// Every byte of the rectangle, computed element by element.
std::set<uint64_t> brute_force(const TensorInfo& t, Range rows, Range cols) {
  const int64_t width = t.shape.back();
  const uint64_t e = dtype_size(t.dtype);
  std::set<uint64_t> bytes;
  for (int64_t r = rows.begin; r < rows.end; ++r) {
    for (int64_t c = cols.begin; c < cols.end; ++c) {
      for (uint64_t b = 0; b < e; ++b) bytes.insert(t.begin + (r * width + c) * e + b);
    }
  }
  return bytes;
}

TEST(SliceByteRanges, MatchesBruteForceOnRandomRectangles) {
  std::mt19937 rng(7);
  const std::vector<std::vector<int64_t>> shapes = {{7}, {3, 5}, {4, 6, 9}, {2, 3, 4, 5}, {1, 1}};
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (const auto& shape : shapes) {
      const TensorInfo t = make_info(shape, dtype, 4096 + 8 * shape.size());
      int64_t rows = 1;
      for (size_t i = 0; i + 1 < shape.size(); ++i) rows *= shape[i];
      const int64_t cols = shape.back();
      for (int trial = 0; trial < 60; ++trial) {
        std::uniform_int_distribution<int64_t> rd(0, rows), cd(0, cols);
        int64_t r0 = rd(rng), r1 = rd(rng), c0 = cd(rng), c1 = cd(rng);
        if (r0 > r1) std::swap(r0, r1);
        if (c0 > c1) std::swap(c0, c1);
        if (trial % 4 == 0) { c0 = 0; c1 = cols; }  // full-width rows
        const std::vector<ByteRange> ranges = slice_byte_ranges(t, {r0, r1}, {c0, c1});
        std::set<uint64_t> got;
        for (size_t i = 0; i < ranges.size(); ++i) {
          ASSERT_LT(ranges[i].begin, ranges[i].end);
          EXPECT_EQ(ranges[i].file_index, 0);
          if (i > 0) {
            EXPECT_LT(ranges[i - 1].end, ranges[i].begin) << "ranges overlap or were not merged";
          }
          for (uint64_t b = ranges[i].begin; b < ranges[i].end; ++b) got.insert(b);
        }
        EXPECT_EQ(got, brute_force(t, {r0, r1}, {c0, c1}))
            << "rows [" << r0 << "," << r1 << ") cols [" << c0 << "," << c1 << ")";
      }
    }
  }
}

TEST(SliceByteRanges, FullWidthRowsAreOneRange) {
  const TensorInfo t = make_info({128, 14, 16}, DType::kBF16, 100);  // [1792, 16] view
  const std::vector<ByteRange> r = slice_byte_ranges(t, {14 * 3, 14 * 5}, {0, 16});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].begin, 100u + 14 * 3 * 16 * 2);
  EXPECT_EQ(r[0].end, 100u + 14 * 5 * 16 * 2);
  EXPECT_TRUE(slice_byte_ranges(t, {5, 5}, {0, 16}).empty());
  // A column slice is one range per row.
  EXPECT_EQ(slice_byte_ranges(t, {0, 10}, {4, 8}).size(), 10u);
}

TEST(SliceByteRanges, RejectsOutOfBoundsAndInconsistentTensors) {
  const TensorInfo t = make_info({4, 6}, DType::kF32, 0);
  EXPECT_THROW(slice_byte_ranges(t, {0, 5}, {0, 6}), Error);
  EXPECT_THROW(slice_byte_ranges(t, {0, 4}, {2, 7}), Error);
  EXPECT_THROW(slice_byte_ranges(t, {-1, 2}, {0, 6}), Error);
  EXPECT_THROW(slice_byte_ranges(t, {3, 2}, {0, 6}), Error);
  TensorInfo bad = t;
  bad.end -= 4;  // one element short
  try {
    slice_byte_ranges(bad, {0, 1}, {0, 1});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("synthetic"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace shardlm
