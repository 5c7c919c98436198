// Linear (own kernel and oneDNN): results against a double-precision reference on odd sizes and
// tails, bit-exactness across ISA paths, batch invariance across batch sizes and thread counts,
// accumulate mode, bf16 weight storage and loading, and argument errors.
#include "kernels/linear.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/half.h"
#include "kernels/gemm_amx.h"
#include "kernels/gemm_own.h"
#include "kernels/qgemm.h"
#include "tests/unit/kernels/linear_reference.h"
#include "tests/unit/kernels/test_util.h"

namespace shardlm {
namespace {

using testing::bit_equal;
using testing::close_to_reference;
using testing::random_vector;
using testing::reference;
using testing::round_to_bf16;
using testing::runnable_isas;
using testing::ScopedIsa;
using testing::ScopedPrefetchTuning;
using testing::ScopedThreads;

const std::vector<int64_t> kSizes = {1, 3, 15, 16, 17, 31, 33, 64, 100, 257, 1000};
const std::vector<int64_t> kBatches = {1, 2, 3, 5, 8, 17};

// Every (n, k) pair of kSizes, each batch size, f32 and bf16 storage, on every ISA path: against
// the double reference, and bit-identical across paths.
TEST(LinearOwn, MatchesReferenceOnAllSizesAndPathsBitExactAcrossIsas) {
  int checked = 0;
  for (const bool bf16 : {false, true}) {
    for (const int64_t n : kSizes) {
      for (const int64_t k : kSizes) {
        const auto w_raw = random_vector(static_cast<size_t>(n * k), static_cast<uint32_t>(n * 7919 + k));
        const auto w_exact = bf16 ? round_to_bf16(w_raw) : w_raw;
        const Linear lin = Linear::from_f32(w_raw.data(), n, k, bf16 ? WeightFormat::kBF16 : WeightFormat::kF32);
        // Larger sizes with two batch sizes only, to keep the test fast.
        const std::vector<int64_t> batches = n * k > 20000 ? std::vector<int64_t>{1, 17} : kBatches;
        for (const int64_t m : batches) {
          const auto x = random_vector(static_cast<size_t>(m * k), static_cast<uint32_t>(m + 31 * k));
          std::vector<double> ref, mag;
          reference(x, w_exact, m, n, k, ref, mag);
          std::vector<float> first;
          for (const Isa isa : runnable_isas()) {
            ScopedIsa scoped(isa);
            std::vector<float> y(static_cast<size_t>(m * n), std::nanf(""));
            lin.forward(x.data(), m, y.data());
            ASSERT_TRUE(close_to_reference(y, ref, mag, 4e-6))
                << "isa " << isa_name(isa) << " bf16 " << bf16 << " m " << m << " n " << n << " k " << k;
            if (first.empty()) {
              first = y;
            } else {
              ASSERT_TRUE(bit_equal(first.data(), y.data(), y.size()))
                  << "isa " << isa_name(isa) << " differs from scalar; bf16 " << bf16 << " m " << m << " n " << n
                  << " k " << k;
            }
            ++checked;
          }
        }
      }
    }
  }
  EXPECT_GT(checked, 500);
}

// Row i of a batched forward equals the forward of row i alone, bit for bit, for every batch size
// and thread count (and whatever the other rows contain).
TEST(LinearOwn, BatchAndThreadInvariantBitExact) {
  for (const Isa isa : runnable_isas()) {
    ScopedIsa scoped(isa);
    for (const bool bf16 : {false, true}) {
      const int64_t n = 333, k = 700;  // tails in n, several k chunks
      const auto w = random_vector(static_cast<size_t>(n * k), 5);
      const Linear lin = Linear::from_f32(w.data(), n, k, bf16 ? WeightFormat::kBF16 : WeightFormat::kF32);
      const int64_t m_max = 40;
      const auto x = random_vector(static_cast<size_t>(m_max * k), 6, -3.0f, 3.0f);
      std::vector<float> single(static_cast<size_t>(m_max * n));
      {
        ScopedThreads threads(1);
        for (int64_t i = 0; i < m_max; ++i) lin.forward(x.data() + i * k, 1, single.data() + i * n);
      }
      for (const int nthreads : {1, 2, 3, 7}) {
        ScopedThreads threads(nthreads);
        for (const int64_t m : {1, 2, 3, 5, 6, 7, 8, 13, 17, 40}) {
          // Batches that start at different rows, so each row is seen at different positions.
          for (const int64_t start : {int64_t{0}, m_max - m}) {
            std::vector<float> y(static_cast<size_t>(m * n));
            lin.forward(x.data() + start * k, m, y.data());
            for (int64_t i = 0; i < m; ++i) {
              ASSERT_TRUE(bit_equal(y.data() + i * n, single.data() + (start + i) * n, static_cast<size_t>(n)))
                  << "isa " << isa_name(isa) << " bf16 " << bf16 << " threads " << nthreads << " m " << m
                  << " row " << start + i;
            }
          }
        }
      }
    }
  }
}

// k lengths around the interleaved chunk groups of the packed layout (pairs, a last group of three,
// chunk lengths that divide k, an incomplete last chunk, a complete chunk alone): every row holds one
// k, every ISA path and batch size against the reference and bit for bit, a GEMV row equal to the
// batched row, and read_row giving back the weights.
TEST(LinearOwn, InterleavedChunkGroupsOfEveryLength) {
  EXPECT_EQ(gemm::chunk_len(21504), 256);  // an even number of 256
  EXPECT_EQ(gemm::chunk_len(768), 256);    // three
  EXPECT_EQ(gemm::chunk_len(100), 256);    // one incomplete chunk
  EXPECT_EQ(gemm::chunk_len(5376), 448);   // 21 x 256 would be pairs and a group of three: 12 x 448
  EXPECT_EQ(gemm::chunk_len(2816), 352);   // 11 x 256: 8 x 352
  EXPECT_EQ(gemm::chunk_len(1280), 320);   // 5 x 256: 4 x 320
  EXPECT_EQ(gemm::chunk_len(704), 352);    // two chunks (the 26B-A4B expert down matrix)
  EXPECT_EQ(gemm::chunk_len(1380), 460);   // three
  EXPECT_EQ(gemm::chunk_len(2112), 352);   // six (2, 3, 4 and 5 chunks would be longer than 512 or odd)
  EXPECT_EQ(gemm::chunk_len(511), 256);    // no even divisor in [128, 512]: 256 and a last incomplete chunk
  EXPECT_EQ(gemm::chunk_len(1381), 256);
  EXPECT_EQ(gemm::chunk_len(1793), 256);
  EXPECT_EQ(gemm::panel_row(0, 512), 0);
  EXPECT_EQ(gemm::panel_row(1, 512), 1);
  EXPECT_EQ(gemm::panel_row(256, 512), 2);
  EXPECT_EQ(gemm::panel_row(257, 512), 3);
  EXPECT_EQ(gemm::panel_row(2, 512), 4);
  EXPECT_EQ(gemm::panel_row(511, 512), 511);
  EXPECT_EQ(gemm::panel_row(300, 511), 300);  // an incomplete last chunk: plain order
  EXPECT_EQ(gemm::panel_row(200, 256), 200);  // one complete chunk alone: plain order
  // 704 = a pair of 352.
  EXPECT_EQ(gemm::panel_row(352, 704), 2);
  EXPECT_EQ(gemm::panel_row(2, 704), 4);
  EXPECT_EQ(gemm::panel_row(703, 704), 703);
  // Three complete chunks: two rows of each in turn.
  EXPECT_EQ(gemm::panel_row(512, 768), 4);
  EXPECT_EQ(gemm::panel_row(257, 768), 3);
  EXPECT_EQ(gemm::panel_row(2, 768), 6);
  EXPECT_EQ(gemm::panel_row(767, 768), 767);
  EXPECT_EQ(gemm::panel_row(920, 1380), 4);  // 3 x 460
  EXPECT_EQ(gemm::panel_row(2, 1380), 6);
  // Five complete chunks: a pair, then a group of three; an incomplete sixth chunk stays plain.
  EXPECT_EQ(gemm::panel_row(256, 1381), 2);
  EXPECT_EQ(gemm::panel_row(512, 1381), 512);
  EXPECT_EQ(gemm::panel_row(1024, 1381), 516);
  EXPECT_EQ(gemm::panel_row(1290, 1381), 1290);
  for (const int64_t k : {int64_t{1}, int64_t{255}, int64_t{256}, int64_t{300}, int64_t{511}, int64_t{513},
                          int64_t{704}, int64_t{768}, int64_t{1280}, int64_t{1380}, int64_t{1381}, int64_t{1793},
                          int64_t{2049}, int64_t{2112}, int64_t{5376}}) {
    std::vector<int> seen(static_cast<size_t>(k), 0);  // every row holds exactly one k
    for (int64_t kk = 0; kk < k; ++kk) {
      const int64_t row = gemm::panel_row(kk, k);
      ASSERT_TRUE(row >= 0 && row < k) << "k " << k << " kk " << kk;
      ++seen[static_cast<size_t>(row)];
    }
    ASSERT_EQ(seen, std::vector<int>(static_cast<size_t>(k), 1)) << "k " << k;
  }
  for (const bool bf16 : {false, true}) {
    for (const int64_t k : {int64_t{300}, int64_t{511}, int64_t{512}, int64_t{513}, int64_t{700}, int64_t{768},
                            int64_t{1024}, int64_t{1280}, int64_t{1380}, int64_t{1381}, int64_t{1536}, int64_t{1793},
                            int64_t{2049}, int64_t{2112}, int64_t{2305}, int64_t{2816}, int64_t{3329}}) {
      const int64_t n = 37;
      const auto w_raw = random_vector(static_cast<size_t>(n * k), static_cast<uint32_t>(k));
      const auto w_exact = bf16 ? round_to_bf16(w_raw) : w_raw;
      const Linear lin = Linear::from_f32(w_raw.data(), n, k, bf16 ? WeightFormat::kBF16 : WeightFormat::kF32);
      std::vector<float> row(static_cast<size_t>(k));
      for (const int64_t r : {int64_t{0}, int64_t{17}, n - 1}) {
        lin.read_row(r, row.data());
        ASSERT_TRUE(bit_equal(row.data(), w_exact.data() + r * k, static_cast<size_t>(k))) << "k " << k << " row " << r;
      }
      const int64_t m = 5;
      const auto x = random_vector(static_cast<size_t>(m * k), static_cast<uint32_t>(k + 1));
      std::vector<double> ref, mag;
      reference(x, w_exact, m, n, k, ref, mag);
      std::vector<float> first;
      for (const Isa isa : runnable_isas()) {
        ScopedIsa scoped(isa);
        std::vector<float> y(static_cast<size_t>(m * n));
        lin.forward(x.data(), m, y.data());
        ASSERT_TRUE(close_to_reference(y, ref, mag, 4e-6)) << isa_name(isa) << " bf16 " << bf16 << " k " << k;
        for (int64_t i = 0; i < m; ++i) {
          std::vector<float> single(static_cast<size_t>(n));
          lin.forward(x.data() + i * k, 1, single.data());
          ASSERT_TRUE(bit_equal(single.data(), y.data() + i * n, static_cast<size_t>(n)))
              << isa_name(isa) << " bf16 " << bf16 << " k " << k << " row " << i;
        }
        if (first.empty()) {
          first = y;
        } else {
          ASSERT_TRUE(bit_equal(first.data(), y.data(), y.size())) << isa_name(isa) << " bf16 " << bf16 << " k " << k;
        }
      }
    }
  }
}

// Runs `products` (their y ignored) as one Linear::forward_group on every ISA, prefetch tuning and
// thread count and checks that each result equals the product's own forward(), bit for bit (the
// group's outputs start at -1: overwritten, not accumulated).
void expect_group_equals_each_forward(const std::vector<Linear::Product>& products, std::initializer_list<int> thread_counts) {
  for (const Isa isa : runnable_isas()) {
    ScopedIsa scoped(isa);
    for (const PrefetchTuning tuning : {PrefetchTuning::kZen, PrefetchTuning::kIntel, PrefetchTuning::kStreams})
    for (const int nthreads : thread_counts) {
      ScopedPrefetchTuning scoped_tuning(tuning);
      ScopedThreads threads(nthreads);
      std::vector<std::vector<float>> alone(products.size()), grouped(products.size());
      std::vector<Linear::Product> group = products;
      for (size_t i = 0; i < products.size(); ++i) {
        const Linear::Product& p = products[i];
        const size_t size = static_cast<size_t>(p.m * p.linear->out_features());
        alone[i].assign(size, 0.0f);
        grouped[i].assign(size, -1.0f);
        p.linear->forward(p.x, p.m, alone[i].data());
        group[i].y = grouped[i].data();
      }
      Linear::forward_group(group);
      for (size_t i = 0; i < products.size(); ++i) {
        ASSERT_TRUE(bit_equal(grouped[i].data(), alone[i].data(), alone[i].size()))
            << "product " << i << " isa " << isa_name(isa) << " tuning " << prefetch_tuning_name(tuning) << " threads "
            << nthreads;
      }
    }
  }
}

// A group of products (as a MoE layer's experts) gives each product's forward() result, bit for
// bit, for every format (mixed in one group, oneDNN included), batch size, thread count and ISA.
TEST(LinearGroup, EachResultEqualsItsForward) {
  struct Spec {
    int64_t n, k, m;
    WeightFormat format;
    MatmulBackend backend;
  };
  const std::vector<Spec> specs = {
      {70, 130, 1, WeightFormat::kQ4, MatmulBackend::kOwn},     {33, 300, 2, WeightFormat::kQ4, MatmulBackend::kOwn},
      {140, 64, 1, WeightFormat::kInt8, MatmulBackend::kOwn},   {17, 520, 5, WeightFormat::kBF16, MatmulBackend::kOwn},
      {300, 96, 1, WeightFormat::kF32, MatmulBackend::kOwn},    {48, 80, 0, WeightFormat::kQ4, MatmulBackend::kOwn},
      {64, 128, 3, onednn_supports_bf16() ? WeightFormat::kBF16 : WeightFormat::kF32, MatmulBackend::kOneDnn},
      {1, 5, 9, WeightFormat::kF32, MatmulBackend::kOwn},
      // Long panels (65 blocks, odd panel counts).
      {70, 2070, 1, WeightFormat::kQ4, MatmulBackend::kOwn},    {33, 2070, 1, WeightFormat::kInt8, MatmulBackend::kOwn},
  };
  std::vector<Linear> lins;
  std::vector<std::vector<float>> xs;
  for (size_t i = 0; i < specs.size(); ++i) {
    const Spec& sp = specs[i];
    const auto w = random_vector(static_cast<size_t>(sp.n * sp.k), static_cast<uint32_t>(100 + i));
    lins.push_back(Linear::from_f32(w.data(), sp.n, sp.k, sp.format, sp.backend));
    xs.push_back(random_vector(static_cast<size_t>(std::max<int64_t>(sp.m, 1) * sp.k), static_cast<uint32_t>(200 + i)));
  }
  std::vector<Linear::Product> products;
  for (size_t i = 0; i < specs.size(); ++i) products.push_back(Linear::Product{&lins[i], xs[i].data(), specs[i].m, nullptr});
  expect_group_equals_each_forward(products, {1, 2, 3});
  EXPECT_THROW(Linear::forward_group({Linear::Product{nullptr, nullptr, 1, nullptr}}), Error);
}

// A decode group (every product one row) large enough to run on several threads, of matrices of
// different formats, run by two GEMMs (bf16: the own one; int8 and q4: the quantised one), each
// scheduling its products' GEMVs in units of its kernel set's streams (schedule_units): every
// result equals its forward() bit for bit, whatever the thread count.
TEST(LinearGroup, DecodeGroupOfMixedFormatsEqualsEachForward) {
  struct Spec {
    int64_t n, k;
    WeightFormat format;
  };
  const std::vector<Spec> specs = {
      {16 * 37 + 5, 512, WeightFormat::kQ4}, {16 * 41 + 9, 512, WeightFormat::kInt8},
      {16 * 29, 512, WeightFormat::kBF16},   {16 * 8 + 1, 512, WeightFormat::kInt8},
      {16 * 53, 512, WeightFormat::kQ4},
  };
  const auto x = random_vector(512, 11);
  std::vector<Linear> lins;
  for (size_t i = 0; i < specs.size(); ++i) {
    const auto w = random_vector(static_cast<size_t>(specs[i].n * specs[i].k), static_cast<uint32_t>(400 + i));
    lins.push_back(Linear::from_f32(w.data(), specs[i].n, specs[i].k, specs[i].format, MatmulBackend::kOwn));
  }
  std::vector<Linear::Product> products;
  for (Linear& lin : lins) products.push_back(Linear::Product{&lin, x.data(), 1, nullptr});
  expect_group_equals_each_forward(products, {2, 3});
}

// Products of a group that read the same input (as the gate+up products of the experts a decoded
// token is routed to) give each product's forward() result too: the input is quantised once for the
// products with the same rows and k, and separately for one that reads the same memory with another
// k or row count.
TEST(LinearGroup, ProductsSharingAnInputEqualTheirForward) {
  struct Spec {
    int64_t n, k, m;
    WeightFormat format;
  };
  const std::vector<Spec> specs = {
      {70, 130, 1, WeightFormat::kQ4}, {40, 130, 1, WeightFormat::kInt8}, {50, 130, 2, WeightFormat::kQ4},
      {20, 100, 1, WeightFormat::kQ4}, {36, 130, 1, WeightFormat::kQ4},   {24, 130, 0, WeightFormat::kQ4},
      {30, 130, 1, WeightFormat::kBF16},
  };
  const auto x = random_vector(2 * 130, 7);
  const auto other = random_vector(130, 8);
  std::vector<Linear> lins;
  for (size_t i = 0; i < specs.size(); ++i) {
    const auto w = random_vector(static_cast<size_t>(specs[i].n * specs[i].k), static_cast<uint32_t>(300 + i));
    lins.push_back(Linear::from_f32(w.data(), specs[i].n, specs[i].k, specs[i].format, MatmulBackend::kOwn));
  }
  std::vector<Linear::Product> products;
  for (size_t i = 0; i < specs.size(); ++i) products.push_back(Linear::Product{&lins[i], x.data(), specs[i].m, nullptr});
  // The last product: the first matrix again, on another input.
  products.push_back(Linear::Product{&lins[0], other.data(), specs[0].m, nullptr});
  expect_group_equals_each_forward(products, {1, 2});
}

// Matrices of 16 MiB and more are split between threads dynamically in decode: the same results,
// bit for bit, whatever the thread count or batch size.
TEST(LinearOwn, LargeMatricesSplitDynamicallyGiveTheSameResults) {
  const int64_t n = 1100, k = 8200;  // bf16 ~18 MB; tails in n
  const auto w = random_vector(static_cast<size_t>(n * k), 41);
  const Linear lin = Linear::from_f32(w.data(), n, k, WeightFormat::kBF16);
  ASSERT_GE(lin.weight_bytes(), size_t{16} << 20);
  const auto x = random_vector(static_cast<size_t>(3 * k), 42);
  std::vector<float> single(static_cast<size_t>(3 * n));
  {
    ScopedThreads threads(1);
    for (int64_t i = 0; i < 3; ++i) lin.forward(x.data() + i * k, 1, single.data() + i * n);
  }
  for (const int nthreads : {2, 3}) {
    ScopedThreads threads(nthreads);
    for (const int64_t m : {int64_t{1}, int64_t{3}}) {
      std::vector<float> y(static_cast<size_t>(m * n));
      lin.forward(x.data(), m, y.data());
      ASSERT_TRUE(bit_equal(y.data(), single.data(), static_cast<size_t>(m * n))) << "threads " << nthreads << " m " << m;
    }
  }
}

// The GEMV tiles' prefetch tuning (per CPU vendor, or measured: gemv_tuning.h) never changes a
// result: every format, GEMVs and small batches, one and two threads, on matrices of several MB (the
// Intel and streams tunings' prefetches reach past a panel into the next one; their streams leave
// panels over at the end), against the scalar path.
TEST(LinearOwn, PrefetchTuningNeverChangesResults) {
  const int64_t n = 600, k = 2816;
  const auto w = random_vector(static_cast<size_t>(n * k), 51);
  const auto x = random_vector(static_cast<size_t>(3 * k), 52);
  for (WeightFormat format : {WeightFormat::kF32, WeightFormat::kBF16, WeightFormat::kInt8, WeightFormat::kQ4}) {
    const Linear lin = Linear::from_f32(w.data(), n, k, format);
    std::vector<float> ref(static_cast<size_t>(3 * n));
    {
      ScopedIsa isa(Isa::kScalar);
      lin.forward(x.data(), 3, ref.data());
    }
    for (Isa isa : runnable_isas()) {
      ScopedIsa scoped_isa(isa);
      for (PrefetchTuning tuning : {PrefetchTuning::kZen, PrefetchTuning::kIntel, PrefetchTuning::kStreams}) {
        ScopedPrefetchTuning scoped_tuning(tuning);
        EXPECT_EQ(prefetch_tuning(), tuning);
        for (int nt : {1, 2}) {
          ScopedThreads threads(nt);
          for (int64_t m : {1, 3}) {
            std::vector<float> y(static_cast<size_t>(m * n));
            lin.forward(x.data(), m, y.data());
            ASSERT_TRUE(bit_equal(y.data(), ref.data(), static_cast<size_t>(m * n)))
                << weight_format_name(format) << " isa " << isa_name(isa) << " tuning " << static_cast<int>(tuning)
                << " threads " << nt << " m " << m;
          }
        }
      }
    }
  }
}

// Large batches take the cache-blocked path (x larger than L2): same results, bit for bit, as one
// row at a time, and as the reference.
TEST(LinearOwn, CacheBlockedLargeBatchMatchesSingleRows) {
  const int64_t n = 50, k = 2100, m = 70;  // x is 588 KB
  const auto w = random_vector(static_cast<size_t>(n * k), 41);
  const auto x = random_vector(static_cast<size_t>(m * k), 42);
  std::vector<double> ref, mag;
  for (const bool bf16 : {false, true}) {
    const auto w_exact = bf16 ? round_to_bf16(w) : w;
    reference(x, w_exact, m, n, k, ref, mag);
    const Linear lin = Linear::from_f32(w.data(), n, k, bf16 ? WeightFormat::kBF16 : WeightFormat::kF32);
    for (const Isa isa : runnable_isas()) {
      ScopedIsa scoped(isa);
      std::vector<float> y(static_cast<size_t>(m * n));
      lin.forward(x.data(), m, y.data());
      ASSERT_TRUE(close_to_reference(y, ref, mag, 4e-6)) << isa_name(isa);
      for (int64_t i = 0; i < m; i += 9) {
        std::vector<float> yi(static_cast<size_t>(n));
        lin.forward(x.data() + i * k, 1, yi.data());
        ASSERT_TRUE(bit_equal(yi.data(), y.data() + i * n, static_cast<size_t>(n))) << isa_name(isa) << " row " << i;
      }
    }
  }
}

// m = 1 covers the GEMV read as three streams at the AVX2 level (5 panels: one group of three and
// two left over, the last with 13 columns) adding into y on one and two threads; k is large enough
// for a parallel region.
TEST(LinearOwn, AccumulateAddsIntoOutput) {
  const int64_t n = 77, k = 1500;
  for (const int64_t m : {1, 5}) {
    const auto w = random_vector(static_cast<size_t>(n * k), 11);
    const auto x = random_vector(static_cast<size_t>(m * k), 12);
    const auto y0 = random_vector(static_cast<size_t>(m * n), 13, -10.0f, 10.0f);
    std::vector<double> ref, mag;
    reference(x, w, m, n, k, ref, mag);
    for (size_t i = 0; i < ref.size(); ++i) {
      ref[i] += y0[i];
      mag[i] += std::fabs(y0[i]);
    }
    for (const WeightFormat format : {WeightFormat::kF32, WeightFormat::kBF16}) {
      const Linear lin = Linear::from_f32(w.data(), n, k, format);
      for (const Isa isa : runnable_isas()) {
        ScopedIsa scoped(isa);
        for (const int nt : {1, 2}) {
          ScopedThreads threads(nt);
          std::vector<float> y = y0;
          lin.forward(x.data(), m, y.data(), /*accumulate=*/true);
          EXPECT_TRUE(close_to_reference(y, ref, mag, format == WeightFormat::kF32 ? 4e-6 : 1e-2))
              << isa_name(isa) << " " << weight_format_name(format) << " m=" << m << " threads=" << nt;
        }
      }
    }
  }
}

TEST(LinearOwn, Bf16StorageRoundsToNearestEvenAndFromBf16MatchesExactly) {
  const int64_t n = 37, k = 260, m = 3;
  auto w = random_vector(static_cast<size_t>(n * k), 21);
  // Values exactly halfway between two bf16 numbers: round to the even one.
  const uint32_t halfway_bits[] = {0x3f808000u, 0x3f818000u};  // 1.00390625 -> 1.0, 1.01171875 -> 1.015625
  std::memcpy(&w[0], &halfway_bits[0], 4);
  std::memcpy(&w[1], &halfway_bits[1], 4);
  std::vector<uint16_t> w16(w.size());
  for (size_t i = 0; i < w.size(); ++i) w16[i] = f32_to_bf16(w[i]);
  EXPECT_EQ(w16[0], 0x3f80);
  EXPECT_EQ(w16[1], 0x3f82);
  const auto x = random_vector(static_cast<size_t>(m * k), 22);
  const Linear a = Linear::from_f32(w.data(), n, k, WeightFormat::kBF16);
  const Linear b = Linear::from_bf16(w16.data(), n, k, WeightFormat::kBF16);
  const auto w_rounded = round_to_bf16(w);
  const Linear c = Linear::from_f32(w_rounded.data(), n, k, WeightFormat::kF32);
  const Linear d = Linear::from_bf16(w16.data(), n, k, WeightFormat::kF32);
  // 3 panels of 16 columns (zero-padded from 37), each padded by 32 elements
  EXPECT_EQ(a.weight_bytes(), static_cast<size_t>(3 * (16 * k + 32) * 2));
  EXPECT_EQ(c.weight_bytes(), static_cast<size_t>(3 * (16 * k + 32) * 4));
  EXPECT_EQ(a.format(), WeightFormat::kBF16);
  EXPECT_EQ(d.format(), WeightFormat::kF32);
  EXPECT_EQ(a.out_features(), n);
  EXPECT_EQ(a.in_features(), k);
  for (const Isa isa : runnable_isas()) {
    ScopedIsa scoped(isa);
    std::vector<float> ya(m * n), yb(m * n), yc(m * n), yd(m * n);
    a.forward(x.data(), m, ya.data());
    b.forward(x.data(), m, yb.data());
    c.forward(x.data(), m, yc.data());
    d.forward(x.data(), m, yd.data());
    EXPECT_TRUE(bit_equal(ya.data(), yb.data(), ya.size())) << isa_name(isa);
    EXPECT_TRUE(bit_equal(ya.data(), yc.data(), ya.size())) << isa_name(isa);
    EXPECT_TRUE(bit_equal(ya.data(), yd.data(), ya.size())) << isa_name(isa);
  }
}

TEST(LinearOwn, DegenerateShapesAndErrors) {
  // k = 0: y = 0, or unchanged with accumulate.
  const Linear lin = Linear::from_f32(nullptr, 5, 0, WeightFormat::kF32);
  std::vector<float> y(10, 3.0f);
  lin.forward(nullptr, 2, y.data(), true);
  EXPECT_EQ(y, std::vector<float>(10, 3.0f));
  lin.forward(nullptr, 2, y.data());
  EXPECT_EQ(y, std::vector<float>(10, 0.0f));
  // m = 0: nothing written.
  const auto w = random_vector(12, 1);
  const Linear l2 = Linear::from_f32(w.data(), 3, 4, WeightFormat::kBF16);
  l2.forward(nullptr, 0, nullptr);

  Linear empty;
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(empty.weight_bytes(), 0u);
  EXPECT_THROW(empty.forward(y.data(), 1, y.data()), Error);
  EXPECT_THROW(Linear::from_f32(w.data(), -1, 4, WeightFormat::kF32), Error);
  EXPECT_THROW(Linear::from_f32(nullptr, 3, 4, WeightFormat::kF32), Error);
  EXPECT_THROW(l2.forward(y.data(), -1, y.data()), Error);
  // Moved-from and moved-to objects.
  Linear moved = Linear::from_f32(w.data(), 3, 4, WeightFormat::kF32);
  Linear target = std::move(moved);
  EXPECT_FALSE(target.empty());
  EXPECT_EQ(target.out_features(), 3);
}

// Every packer (own, quantised, AMX; packing needs no AMX) refuses a negative shape, naming it.
TEST(LinearOwn, EveryPackerRefusesNegativeShapesNamingThem) {
  const auto expect_refused = [](const std::function<void()>& pack, const std::string& shape) {
    try {
      pack();
      ADD_FAILURE() << "the shape " << shape << " was packed";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("linear weight shape " + shape + " is negative"), std::string::npos) << e.what();
    }
  };
  const auto w = random_vector(12, 1);
  const auto no_row = [](int64_t, float*) {};
  expect_refused([&] { gemm::pack_f32(w.data(), -1, 4, false); }, "[-1, 4]");
  expect_refused([&] { qgemm::pack_f32(w.data(), 3, -4, qgemm::Format::kQ4); }, "[3, -4]");
  expect_refused([&] { qgemm::pack_rows(-2, 6, qgemm::Format::kInt8, no_row); }, "[-2, 6]");
  expect_refused([&] { amx::pack_f32(w.data(), 3, -1); }, "[3, -1]");
  expect_refused([&] { Linear::from_bf16(nullptr, -5, 2, WeightFormat::kQ4); }, "[-5, 2]");
}

// On a CPU where oneDNN has no bf16 matmul (before AVX-512), bf16 weights on the oneDNN backend are
// refused with an error that says so and what to use instead.
void expect_bf16_refused(const std::function<void()>& make) {
  try {
    make();
    ADD_FAILURE() << "bf16 weights on oneDNN were accepted on a CPU without oneDNN bf16 support";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("oneDNN has no bf16 matmul on this CPU"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--matmul own"), std::string::npos) << e.what();
  }
}

// oneDNN backend: f32 weights match the double reference like the own kernel does; bf16 weights
// match a double reference on bf16-rounded activations and weights (what oneDNN multiplies) where
// oneDNN has bf16 matmuls, and are refused clearly where it has not.
TEST(LinearOneDnn, MatchesReferenceF32AndBf16) {
  const std::vector<int64_t> sizes = {1, 3, 17, 64, 257, 1000};
  int checked = 0;
  for (const bool bf16 : {false, true}) {
    for (const int64_t n : sizes) {
      for (const int64_t k : sizes) {
        const auto w = random_vector(static_cast<size_t>(n * k), static_cast<uint32_t>(3 * n + k));
        if (bf16 && !onednn_supports_bf16()) {
          expect_bf16_refused([&] { Linear::from_f32(w.data(), n, k, WeightFormat::kBF16, MatmulBackend::kOneDnn); });
          checked += 2;
          continue;
        }
        const Linear dnn = Linear::from_f32(w.data(), n, k, bf16 ? WeightFormat::kBF16 : WeightFormat::kF32,
                                            MatmulBackend::kOneDnn);
        const Linear own = Linear::from_f32(w.data(), n, k, bf16 ? WeightFormat::kBF16 : WeightFormat::kF32);
        ASSERT_EQ(dnn.backend(), MatmulBackend::kOneDnn);
        ASSERT_GE(dnn.weight_bytes(), static_cast<size_t>(n * k) * (bf16 ? 2 : 4));
        for (const int64_t m : {int64_t{1}, int64_t{17}}) {
          const auto x = random_vector(static_cast<size_t>(m * k), static_cast<uint32_t>(m * 100 + k));
          std::vector<double> ref, mag;
          reference(bf16 ? round_to_bf16(x) : x, bf16 ? round_to_bf16(w) : w, m, n, k, ref, mag);
          std::vector<float> y(static_cast<size_t>(m * n));
          dnn.forward(x.data(), m, y.data());
          ASSERT_TRUE(close_to_reference(y, ref, mag, 1e-5)) << "bf16 " << bf16 << " m " << m << " n " << n
                                                             << " k " << k;
          // Against the own kernel: identical for f32 up to rounding; for bf16 within the
          // activation rounding (2^-8 relative per product).
          std::vector<float> yo(static_cast<size_t>(m * n));
          own.forward(x.data(), m, yo.data());
          std::vector<double> yo_d(yo.begin(), yo.end());
          ASSERT_TRUE(close_to_reference(y, yo_d, mag, bf16 ? 8e-3 : 1e-5));
          // accumulate: y += x·Wᵀ
          std::vector<float> acc(static_cast<size_t>(m * n), 1.5f);
          dnn.forward(x.data(), m, acc.data(), true);
          for (size_t i = 0; i < acc.size(); ++i) {
            ASSERT_NEAR(acc[i], y[i] + 1.5f, 1e-5 * (mag[i] + 1.5)) << i;
          }
          ++checked;
        }
      }
    }
  }
  EXPECT_EQ(checked, 2 * 36 * 2);
}

TEST(LinearOneDnn, FromBf16AndConcurrentBatchSizes) {
  const int64_t n = 96, k = 200;
  const auto w = random_vector(static_cast<size_t>(n * k), 77);
  std::vector<uint16_t> w16(w.size());
  for (size_t i = 0; i < w.size(); ++i) w16[i] = f32_to_bf16(w[i]);
  if (!onednn_supports_bf16()) {
    expect_bf16_refused([&] { Linear::from_bf16(w16.data(), n, k, WeightFormat::kBF16, MatmulBackend::kOneDnn); });
    return;
  }
  const Linear a = Linear::from_bf16(w16.data(), n, k, WeightFormat::kBF16, MatmulBackend::kOneDnn);
  const Linear b = Linear::from_f32(w.data(), n, k, WeightFormat::kBF16, MatmulBackend::kOneDnn);
  const auto x = random_vector(static_cast<size_t>(9 * k), 78);
  for (const int64_t m : {1, 9, 1, 4}) {  // repeated m reuses the cached primitive
    std::vector<float> ya(m * n), yb(m * n);
    a.forward(x.data(), m, ya.data());
    b.forward(x.data(), m, yb.data());
    EXPECT_TRUE(bit_equal(ya.data(), yb.data(), ya.size())) << m;
  }
}

}  // namespace
}  // namespace shardlm
