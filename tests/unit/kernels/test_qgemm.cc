// Quantised weights (int8, q4) through Linear: the kernel result equals the exact integer
// arithmetic of qgemm.h computed here independently from the dequantised rows; bit-exact across ISA
// paths, batch sizes, row positions, thread counts and accumulate mode; quantisation error bounds;
// tied-row reads; non-finite input refused.
#include "kernels/qgemm.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/half.h"
#include "kernels/linear.h"
#include "tests/unit/kernels/test_util.h"

namespace shardlm {
namespace {

using testing::random_vector;
using testing::runnable_isas;
using testing::ScopedIsa;
using testing::ScopedPrefetchTuning;
using testing::ScopedThreads;

const WeightFormat kFormats[] = {WeightFormat::kInt8, WeightFormat::kQ4};

// Turns qgemm's AVX-VNNI and AMX int8 switches back on when a test that flips them ends, also when a
// failed assertion returns from it early (the tests after it expect the defaults).
struct RestoreQgemmSwitches {
  RestoreQgemmSwitches() = default;
  RestoreQgemmSwitches(const RestoreQgemmSwitches&) = delete;
  RestoreQgemmSwitches& operator=(const RestoreQgemmSwitches&) = delete;
  ~RestoreQgemmSwitches() {
    qgemm::use_avx_vnni(true);
    qgemm::use_amx_int8(true);
  }
};

// The activation quantisation of qgemm.h, written out independently.
struct RowQuant {
  std::vector<int> q;      // kp values
  std::vector<float> d;    // per block
};
RowQuant quantize_row(const float* x, int64_t k) {
  const int64_t kp = (k + 31) / 32 * 32;
  RowQuant r;
  r.q.assign(static_cast<size_t>(kp), 0);
  for (int64_t b = 0; b < kp / 32; ++b) {
    float amax = 0.0f;
    for (int64_t j = b * 32; j < std::min(k, b * 32 + 32); ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d > 0.0f ? 1.0f / d : 0.0f;
    for (int64_t j = b * 32; j < std::min(k, b * 32 + 32); ++j) r.q[j] = static_cast<int>(std::nearbyint(x[j] * id));
    r.d.push_back(d);
  }
  return r;
}

// The weight quantisation of qgemm.h for row w (k values), written out independently: codes (kp)
// and the scale of each block (int8: the row's scale in every block).
struct WeightQuant {
  std::vector<int> code;
  std::vector<float> d;
};
WeightQuant quantize_weights(const float* w, int64_t k, WeightFormat format) {
  const int64_t kp = (k + 31) / 32 * 32, nb = kp / 32;
  WeightQuant r;
  r.code.assign(static_cast<size_t>(kp), 0);
  float row_max = 0.0f;
  for (int64_t j = 0; j < k; ++j) row_max = std::max(row_max, std::fabs(w[j]));
  for (int64_t b = 0; b < nb; ++b) {
    float d;
    int lo, hi;
    if (format == WeightFormat::kInt8) {
      d = row_max / 127.0f;
      lo = -127;
      hi = 127;
    } else {
      float wm = 0.0f;
      for (int64_t j = b * 32; j < std::min(k, b * 32 + 32); ++j) {
        if (std::fabs(w[j]) > std::fabs(wm)) wm = w[j];
      }
      d = f16_to_f32(f32_to_f16(wm / -8.0f));
      lo = -8;
      hi = 7;
    }
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int64_t j = b * 32; j < std::min(k, b * 32 + 32); ++j) {
      r.code[j] = std::clamp(static_cast<int>(std::nearbyint(w[j] * id)), lo, hi);
    }
    r.d.push_back(d);
  }
  return r;
}

// y[c] by the arithmetic of qgemm.h.
float expected_output(const float* wrow, int64_t k, WeightFormat format, const float* x, float start) {
  const RowQuant xq = quantize_row(x, k);
  const WeightQuant wq = quantize_weights(wrow, k, format);
  const int64_t nb = static_cast<int64_t>(xq.d.size());
  float t = start;
  for (int64_t c0 = 0; c0 < nb; c0 += 8) {
    float f = 0.0f;
    for (int64_t b = c0; b < std::min(nb, c0 + 8); ++b) {
      int32_t s = 0;
      for (int64_t j = b * 32; j < b * 32 + 32; ++j) s += xq.q[j] * wq.code[j];
      if (format == WeightFormat::kInt8) {
        f = std::fma(static_cast<float>(s), xq.d[b], f);
      } else {
        f = std::fma(static_cast<float>(s) * wq.d[b], xq.d[b], f);
      }
    }
    t = format == WeightFormat::kInt8 ? std::fma(f, wq.d[0], t) : t + f;
  }
  return t;
}

TEST(QuantizedLinear, MatchesTheIntegerArithmeticOnOddShapes) {
  for (WeightFormat format : kFormats) {
    for (int64_t n : {1, 15, 17, 40}) {
      for (int64_t k : {1, 31, 32, 70, 300}) {
        const std::vector<float> w = random_vector(static_cast<size_t>(n * k), 11 + n + k);
        const std::vector<float> x = random_vector(static_cast<size_t>(3 * k), 5 + k);
        const Linear lin = Linear::from_f32(w.data(), n, k, format);
        std::vector<float> y(static_cast<size_t>(3 * n));
        lin.forward(x.data(), 3, y.data());
        for (int64_t i = 0; i < 3; ++i) {
          for (int64_t c = 0; c < n; ++c) {
            const float want = expected_output(w.data() + c * k, k, format, x.data() + i * k, 0.0f);
            ASSERT_EQ(y[i * n + c], want)
                << weight_format_name(format) << " n=" << n << " k=" << k << " row " << i << " col " << c;
          }
        }
      }
    }
  }
}

// Blocks at the ends of the integer ranges, where the AVX2 q4 GEMV's int16 chains come closest to
// the ends of their range (+-30480; their start, -4 times the block's activation sum, carries the
// stored offset's correction): weights at q = 7 with one -8 per block, or all -8; activations at +-127, with the
// signs the two int16 lanes of a column see opposite (k % 4 < 2 against k % 4 >= 2), equal, or
// alternating. Every ISA, one row (the GEMV tiles) and three, equal to the integer arithmetic.
TEST(QuantizedLinear, ExtremeBlocksAreExact) {
  const int64_t n = 48, k = 96;
  std::vector<float> w(static_cast<size_t>(n * k));
  for (int64_t c = 0; c < n; ++c) {
    const float sign = c % 2 == 0 ? 1.0f : -1.0f;
    for (int64_t j = 0; j < k; ++j) {
      w[c * k + j] = c % 3 == 2 || j % 32 == c % 32 ? sign : -0.875f * sign;
    }
  }
  const int64_t m = 4;
  std::vector<float> x(static_cast<size_t>(m * k));
  for (int64_t j = 0; j < k; ++j) {
    x[j] = j % 4 < 2 ? 1.0f : -1.0f;
    x[k + j] = j % 4 < 2 ? -1.0f : 1.0f;
    x[2 * k + j] = 1.0f;
    x[3 * k + j] = j % 2 == 0 ? 1.0f : -1.0f;
  }
  for (WeightFormat format : kFormats) {
    const Linear lin = Linear::from_f32(w.data(), n, k, format);
    for (Isa isa : runnable_isas()) {
      ScopedIsa scoped(isa);
      std::vector<float> batch(static_cast<size_t>(m * n)), one(static_cast<size_t>(n));
      lin.forward(x.data(), m, batch.data());
      for (int64_t i = 0; i < m; ++i) {
        lin.forward(x.data() + i * k, 1, one.data());
        for (int64_t c = 0; c < n; ++c) {
          const float want = expected_output(w.data() + c * k, k, format, x.data() + i * k, 0.0f);
          ASSERT_EQ(one[c], want) << weight_format_name(format) << " " << isa_name(isa) << " row " << i << " col " << c;
          ASSERT_EQ(batch[i * n + c], want) << weight_format_name(format) << " " << isa_name(isa) << " batch row " << i
                                            << " col " << c;
        }
      }
    }
  }
}

// Short panels (k = 600) and long ones (k = 2070: 65 blocks, an odd count); 7 panels (n = 100, the
// last with 4 columns) and 6 (n = 90, the last with 10): the AVX2 GEMV without VNNI reads three
// streams, in units of three panels two apart (schedule_units) and the panels left over alone, so
// that the last panel is read alone in one shape (panel 6 of 7) and in a group in the other (0, 2, 4
// and 1, 3, 5 of 6).
TEST(QuantizedLinear, BitExactAcrossIsasBatchesThreadsAndRowPositions) {
  const RestoreQgemmSwitches restore_switches;
  for (const auto& [n, k] : {std::pair<int64_t, int64_t>{100, 600}, {100, 2070}, {90, 600}, {90, 2070}}) {
    const std::vector<float> w = random_vector(static_cast<size_t>(n * k), 3);
    for (WeightFormat format : kFormats) {
      const Linear lin = Linear::from_f32(w.data(), n, k, format);
      const std::vector<float> x = random_vector(static_cast<size_t>(17 * k), 9);
      // Reference: one row at a time, scalar path, one thread.
      std::vector<float> ref(static_cast<size_t>(17 * n));
      {
        ScopedIsa isa(Isa::kScalar);
        ScopedThreads threads(1);
        for (int64_t i = 0; i < 17; ++i) lin.forward(x.data() + i * k, 1, ref.data() + i * n);
      }
      for (Isa isa : runnable_isas()) {
        ScopedIsa scoped(isa);
        // At the AVX2 level: with AVX-VNNI (where the CPU has it) and with vpmaddubsw.
        for (bool vnni : {true, false}) {
          qgemm::use_avx_vnni(vnni);
          for (int nt : {1, 2, 3}) {
            ScopedThreads threads(nt);
            for (int64_t m : {1, 2, 3, 5, 8, 17}) {
              std::vector<float> y(static_cast<size_t>(m * n));
              lin.forward(x.data() + (17 - m) * k, m, y.data());
              ASSERT_EQ(0, std::memcmp(y.data(), ref.data() + (17 - m) * n, sizeof(float) * m * n))
                  << weight_format_name(format) << " isa=" << isa_name(isa) << " avx-vnni=" << vnni << " threads=" << nt
                  << " m=" << m << " k=" << k;
            }
          }
        }
        qgemm::use_avx_vnni(true);
      }
    }
  }
}

// Batches on AMX int8 tiles (tiles of 16 rows, a last one of 11-15; fewer left over stay on the
// micro-kernels) give the micro-kernels' results bit for bit and match the integer arithmetic
// written out here: rows that fill tiles exactly, a tile of fewer rows alone (11, 12, 15) and after
// whole ones (27, 28, 31), rows left to the micro-kernels (8, 10 alone; 17, 26, 70 after whole tiles),
// chunks of 8 blocks with a short last one (k = 600: 19 blocks; 2070: 65), a last panel of 4
// columns (n = 100) and more panels than one block of them (n = 1100: 69 panels; a block of panels
// and one chunk is 128 KiB of weights, 32 int8 panels or 64 q4), accumulating or not, 1-3 threads.
TEST(QuantizedLinear, AmxTileBatchesEqualTheMicroKernelsBitForBit) {
  const RestoreQgemmSwitches restore_switches;
  if (!has_amx_int8()) GTEST_SKIP() << "this CPU (or its OS) offers no AMX-INT8 tiles";
  ScopedIsa isa(Isa::kAvx512);
  for (const auto& [n, k] : {std::pair<int64_t, int64_t>{100, 600}, {100, 2070}, {1100, 600}}) {
    const std::vector<float> w = random_vector(static_cast<size_t>(n * k), 41);
    const int64_t m_max = 70;
    const std::vector<float> x = random_vector(static_cast<size_t>(m_max * k), 43);
    const std::vector<float> start = random_vector(static_cast<size_t>(m_max * n), 47);
    for (WeightFormat format : kFormats) {
      const Linear lin = Linear::from_f32(w.data(), n, k, format);
      for (int64_t m : {8, 10, 11, 12, 15, 16, 17, 26, 27, 28, 31, 32, 48, 70}) {
        for (bool accumulate : {false, true}) {
          std::vector<float> ref(start.begin(), start.begin() + m * n);
          qgemm::use_amx_int8(false);
          {
            ScopedThreads threads(1);
            lin.forward(x.data(), m, ref.data(), accumulate);
          }
          qgemm::use_amx_int8(true);
          for (int nt : {1, 2, 3}) {
            ScopedThreads threads(nt);
            std::vector<float> y(start.begin(), start.begin() + m * n);
            lin.forward(x.data(), m, y.data(), accumulate);
            ASSERT_EQ(0, std::memcmp(y.data(), ref.data(), sizeof(float) * m * n))
                << weight_format_name(format) << " n=" << n << " k=" << k << " m=" << m << " accumulate=" << accumulate
                << " threads=" << nt;
          }
          // A sample of outputs against the arithmetic written out here.
          for (int64_t i : {int64_t{0}, m / 2, m - 1}) {
            for (int64_t c : {int64_t{0}, n / 3, n - 1}) {
              const float expected = expected_output(w.data() + c * k, k, format, x.data() + i * k,
                                                     accumulate ? start[static_cast<size_t>(i * n + c)] : 0.0f);
              ASSERT_EQ(expected, ref[static_cast<size_t>(i * n + c)])
                  << weight_format_name(format) << " m=" << m << " row " << i << " column " << c;
            }
          }
        }
      }
    }
  }
}

// Matrices of 16 MiB and more are split between threads dynamically in decode: the same results,
// bit for bit, whatever the thread count or batch size.
TEST(QuantizedLinear, LargeMatricesSplitDynamicallyGiveTheSameResults) {
  const int64_t n = 2000, k = 16400;  // int8 ~33 MB, q4 ~19 MB; tails in n and k
  const std::vector<float> w = random_vector(static_cast<size_t>(n * k), 31);
  const std::vector<float> x = random_vector(static_cast<size_t>(3 * k), 32);
  for (WeightFormat format : kFormats) {
    const Linear lin = Linear::from_f32(w.data(), n, k, format);
    ASSERT_GE(lin.weight_bytes(), size_t{16} << 20);
    std::vector<float> ref(static_cast<size_t>(3 * n));
    {
      ScopedThreads threads(1);
      for (int64_t i = 0; i < 3; ++i) lin.forward(x.data() + i * k, 1, ref.data() + i * n);
    }
    for (int nt : {2, 3}) {
      ScopedThreads threads(nt);
      for (int64_t m : {1, 3}) {
        std::vector<float> y(static_cast<size_t>(m * n));
        lin.forward(x.data(), m, y.data());
        ASSERT_EQ(0, std::memcmp(y.data(), ref.data(), sizeof(float) * m * n)) << weight_format_name(format) << " threads=" << nt << " m=" << m;
      }
    }
  }
}

// A GEMV read as streams is laid out in one block of panels per thread, each block's streams placed
// by its own length (on Intel cores half a page apart where a stream has more than 128 panels: here
// one and two threads, not three or four): the same result, bit for bit, at every thread count,
// level and prefetch tuning (one, two or four streams at the AVX-512 level) as the scalar path on
// one thread.
TEST(QuantizedLinear, GemvInBlocksPerThreadEqualsOneThreadAtEveryCount) {
  const RestoreQgemmSwitches restore_switches;
  const int64_t n = 16 * 700 + 3, k = 96;  // 701 panels, the last with 3 columns
  const std::vector<float> w = random_vector(static_cast<size_t>(n * k), 61);
  const std::vector<float> x = random_vector(static_cast<size_t>(k), 62);
  for (WeightFormat format : kFormats) {
    const Linear lin = Linear::from_f32(w.data(), n, k, format);
    std::vector<float> ref(static_cast<size_t>(n));
    {
      ScopedIsa isa(Isa::kScalar);
      ScopedThreads threads(1);
      lin.forward(x.data(), 1, ref.data());
    }
    for (Isa isa : runnable_isas()) {
      ScopedIsa scoped(isa);
      for (bool vnni : {true, false}) {
        qgemm::use_avx_vnni(vnni);
        for (PrefetchTuning tuning : {PrefetchTuning::kZen, PrefetchTuning::kIntel, PrefetchTuning::kStreams}) {
          ScopedPrefetchTuning scoped_tuning(tuning);
          for (int nt : {1, 2, 3, 4}) {
            ScopedThreads threads(nt);
            std::vector<float> y(static_cast<size_t>(n), -1.0f);
            lin.forward(x.data(), 1, y.data());
            ASSERT_EQ(0, std::memcmp(y.data(), ref.data(), sizeof(float) * n))
                << weight_format_name(format) << " isa=" << isa_name(isa) << " avx-vnni=" << vnni
                << " tuning=" << prefetch_tuning_name(tuning) << " threads=" << nt;
          }
        }
      }
      qgemm::use_avx_vnni(true);
    }
  }
}

// Batches and GEMVs (m = 1: at the AVX2 level without VNNI read as three streams, here five panels:
// one group of three and two left over, the last with one column) on one and two threads (k is
// large enough for a parallel region).
TEST(QuantizedLinear, AccumulateAddsInTheDefinedOrder) {
  const RestoreQgemmSwitches restore_switches;
  const int64_t n = 65, k = 2100;
  const std::vector<float> w = random_vector(static_cast<size_t>(n * k), 21);
  const std::vector<float> x = random_vector(static_cast<size_t>(2 * k), 22);
  const std::vector<float> start = random_vector(static_cast<size_t>(2 * n), 23);
  for (WeightFormat format : kFormats) {
    const Linear lin = Linear::from_f32(w.data(), n, k, format);
    std::vector<float> ref = start;
    {
      ScopedIsa isa(Isa::kScalar);
      lin.forward(x.data(), 2, ref.data(), true);
    }
    for (int64_t c = 0; c < n; ++c) {
      const float want = expected_output(w.data() + c * k, k, format, x.data() + k, start[n + c]);
      ASSERT_EQ(ref[n + c], want);
    }
    for (Isa isa : runnable_isas()) {
      ScopedIsa scoped(isa);
      for (bool vnni : {true, false}) {
        qgemm::use_avx_vnni(vnni);
        for (int nt : {1, 2}) {
          ScopedThreads threads(nt);
          std::vector<float> y = start;
          lin.forward(x.data(), 2, y.data(), true);
          ASSERT_EQ(0, std::memcmp(y.data(), ref.data(), sizeof(float) * y.size())) << isa_name(isa) << " threads=" << nt;
          y = start;
          lin.forward(x.data() + k, 1, y.data() + n, true);
          ASSERT_EQ(0, std::memcmp(y.data() + n, ref.data() + n, sizeof(float) * n))
              << isa_name(isa) << " avx-vnni=" << vnni << " m=1 threads=" << nt;
        }
      }
      qgemm::use_avx_vnni(true);
    }
  }
}

TEST(QuantizedLinear, QuantisationErrorIsBounded) {
  const int64_t n = 64, k = 512;
  const std::vector<float> w = random_vector(static_cast<size_t>(n * k), 31);
  const std::vector<float> x = random_vector(static_cast<size_t>(k), 32);
  const Linear exact = Linear::from_f32(w.data(), n, k, WeightFormat::kF32);
  std::vector<float> y_exact(static_cast<size_t>(n));
  exact.forward(x.data(), 1, y_exact.data());
  double norm = 0.0;
  for (float v : y_exact) norm += static_cast<double>(v) * v;
  for (WeightFormat format : kFormats) {
    const Linear lin = Linear::from_f32(w.data(), n, k, format);
    // Every weight close to its quantised value, and read_row gives code * scale.
    std::vector<float> row(static_cast<size_t>(k));
    for (int64_t r = 0; r < n; ++r) {
      lin.read_row(r, row.data());
      const WeightQuant wq = quantize_weights(w.data() + r * k, k, format);
      for (int64_t j = 0; j < k; ++j) ASSERT_EQ(row[j], static_cast<float>(wq.code[j]) * wq.d[j / 32]);
      for (int64_t b = 0; b < k / 32; ++b) {
        float amax = 0.0f;
        for (int64_t j = b * 32; j < b * 32 + 32; ++j) amax = std::max(amax, std::fabs(w[r * k + j]));
        float row_max = 0.0f;
        for (int64_t j = 0; j < k; ++j) row_max = std::max(row_max, std::fabs(w[r * k + j]));
        // int8: half a step; q4: half a step, a whole one for a value of the opposite sign to the
        // block's largest that is clipped from +8 to +7 steps.
        const float bound = format == WeightFormat::kInt8 ? 0.5f * row_max / 127.0f : amax / 8.0f;
        for (int64_t j = b * 32; j < b * 32 + 32; ++j) {
          ASSERT_LE(std::fabs(row[j] - w[r * k + j]), bound * 1.01f + 1e-7f);
        }
      }
    }
    std::vector<float> y(static_cast<size_t>(n));
    lin.forward(x.data(), 1, y.data());
    double err = 0.0;
    for (int64_t c = 0; c < n; ++c) err += (static_cast<double>(y[c]) - y_exact[c]) * (y[c] - y_exact[c]);
    const double rel = std::sqrt(err / norm);
    EXPECT_LT(rel, format == WeightFormat::kInt8 ? 0.02 : 0.15) << weight_format_name(format);
    EXPECT_GT(rel, 0.0) << weight_format_name(format);
  }
}

TEST(QuantizedLinear, Bf16SourceEqualsItsF32Widening) {
  const int64_t n = 20, k = 96;
  const std::vector<float> w = random_vector(static_cast<size_t>(n * k), 41);
  std::vector<uint16_t> w16(w.size());
  std::vector<float> widened(w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    w16[i] = f32_to_bf16(w[i]);
    widened[i] = bf16_to_f32(w16[i]);
  }
  for (WeightFormat format : kFormats) {
    const Linear a = Linear::from_bf16(w16.data(), n, k, format);
    const Linear b = Linear::from_f32(widened.data(), n, k, format);
    EXPECT_EQ(a.weight_bytes(), b.weight_bytes());
    EXPECT_EQ(a.format(), format);
    const std::vector<float> x = random_vector(static_cast<size_t>(k), 42);
    std::vector<float> ya(static_cast<size_t>(n)), yb(static_cast<size_t>(n));
    a.forward(x.data(), 1, ya.data());
    b.forward(x.data(), 1, yb.data());
    EXPECT_EQ(0, std::memcmp(ya.data(), yb.data(), sizeof(float) * n));
  }
}

TEST(QuantizedLinear, StorageIsSmallerThanBf16) {
  const int64_t n = 256, k = 1024;
  const std::vector<float> w = random_vector(static_cast<size_t>(n * k), 51);
  const size_t bf16 = Linear::from_f32(w.data(), n, k, WeightFormat::kBF16).weight_bytes();
  const size_t int8 = Linear::from_f32(w.data(), n, k, WeightFormat::kInt8).weight_bytes();
  const size_t q4 = Linear::from_f32(w.data(), n, k, WeightFormat::kQ4).weight_bytes();
  EXPECT_LT(static_cast<double>(int8) / (n * k), 1.02);
  EXPECT_LT(static_cast<double>(q4) / (n * k), 0.57);
  EXPECT_LT(int8 * 1.9, bf16);
}

TEST(QuantizedLinear, ZeroRowsAndZeroInputsGiveZero) {
  const int64_t n = 17, k = 64;
  std::vector<float> w(static_cast<size_t>(n * k), 0.0f);
  for (int64_t j = 0; j < k; ++j) w[5 * k + j] = 1.0f;  // one non-zero row
  std::vector<float> x(static_cast<size_t>(k), 0.0f);
  for (WeightFormat format : kFormats) {
    const Linear lin = Linear::from_f32(w.data(), n, k, format);
    std::vector<float> y(static_cast<size_t>(n), 1.0f);
    lin.forward(x.data(), 1, y.data());
    for (float v : y) EXPECT_EQ(v, 0.0f);
    std::vector<float> ones(static_cast<size_t>(k), 1.0f);
    lin.forward(ones.data(), 1, y.data());
    EXPECT_FLOAT_EQ(y[5], static_cast<float>(k));
    EXPECT_EQ(y[4], 0.0f);
  }
}

// Weights that lie exactly halfway between two codes round to the even code (as std::nearbyint), and
// the ends of the ranges clamp; read back through the packed layout (every position of a block).
TEST(QuantizedLinear, HalfwayWeightsRoundToEven) {
  const int64_t n = 3, k = 64;
  std::vector<float> w(static_cast<size_t>(n * k));
  // int8: the row maximum 127 gives scale 1; q4: each block's -8 gives scale 1.
  const float halves[] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 6.5f, -7.5f};
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t j = 0; j < k; ++j) w[r * k + j] = halves[(j + r) % 8];
    w[r * k + (r * 13) % 32] = -8.0f;
    w[r * k + 32 + (r * 7) % 32] = -8.0f;
  }
  std::vector<float> w8 = w;
  for (int64_t r = 0; r < n; ++r) w8[r * k + 40] = 127.0f;
  for (WeightFormat format : kFormats) {
    const std::vector<float>& src = format == WeightFormat::kInt8 ? w8 : w;
    const Linear lin = Linear::from_f32(src.data(), n, k, format);
    std::vector<float> row(static_cast<size_t>(k));
    for (int64_t r = 0; r < n; ++r) {
      lin.read_row(r, row.data());
      for (int64_t j = 0; j < k; ++j) {
        const float want = std::nearbyint(src[r * k + j]);
        ASSERT_EQ(row[j], want) << weight_format_name(format) << " row " << r << " k " << j << " from " << src[r * k + j];
      }
    }
  }
}

TEST(QuantizedLinear, NonFiniteValuesAreRefused) {
  const int64_t n = 4, k = 40;
  std::vector<float> w(static_cast<size_t>(n * k), 0.5f);
  std::vector<float> bad = w;
  bad[2 * k + 7] = std::nanf("");
  for (WeightFormat format : kFormats) {
    EXPECT_THROW(Linear::from_f32(bad.data(), n, k, format), Error);
    const Linear lin = Linear::from_f32(w.data(), n, k, format);
    for (float value : {INFINITY, std::nanf("")}) {
      std::vector<float> x(static_cast<size_t>(k), 1.0f);
      x[3] = value;
      std::vector<float> y(static_cast<size_t>(n));
      for (Isa isa : runnable_isas()) {
        ScopedIsa scoped(isa);
        EXPECT_THROW(lin.forward(x.data(), 1, y.data()), Error) << isa_name(isa) << " " << value;
      }
    }
  }
}

// The vectorised activation quantisation gives the scalar one's bytes, scales and sums, and finds
// a non-finite value wherever it is.
// The vector activation quantisers give the scalar one's bytes, scales and sums: zeros, tiny values,
// halfway quotients, blocks whose scale underflows (1 / d is infinite), non-finite values anywhere.
TEST(QuantizedLinear, VectorActivationQuantisationEqualsScalar) {
  using QuantizeRow = bool (*)(const float*, int64_t, int64_t, int8_t*, float*, int32_t*);
  std::vector<std::pair<const char*, QuantizeRow>> vector_quantizers;
  if (has_avx512_vnni()) vector_quantizers.emplace_back("avx512", &qgemm::quantize_row_avx512);
  if (detected_isa() >= Isa::kAvx2) vector_quantizers.emplace_back("avx2", &qgemm::quantize_row_avx2);
  if (vector_quantizers.empty()) GTEST_SKIP() << "no AVX2";
  for (const auto& [name, quantize] : vector_quantizers) {
    for (int64_t k : {1, 5, 16, 17, 31, 32, 33, 100, 704, 5376}) {
      const int64_t kp = (k + 31) / 32 * 32, nb = kp / 32;
      std::vector<float> x = random_vector(static_cast<size_t>(k), static_cast<uint32_t>(k));
      for (int64_t j = 0; j < k; j += 7) x[j] = (j % 3 == 0) ? 0.0f : x[j] * 1e-30f;  // zeros, tiny values
      if (k > 40) {
        for (int64_t j = 32; j < 40; ++j) x[j] = 0.0f;                                  // an all-zero run
        x[64 % k] = 127.0f, x[65 % k] = 0.5f, x[66 % k] = -1.5f, x[67 % k] = 2.5f;      // halfway quotients
      }
      if (k > 96) {
        for (int64_t j = 64; j < 96; ++j) x[j] = (j % 2 ? 1e-39f : -3e-40f) * static_cast<float>(j % 5);  // scale underflows
      }
      std::vector<int8_t> q1(kp), q2(kp);
      std::vector<float> d1(nb), d2(nb);
      std::vector<int32_t> s1(nb), s2(nb);
      ASSERT_TRUE(qgemm::quantize_row_scalar(x.data(), k, kp, q1.data(), d1.data(), s1.data()));
      ASSERT_TRUE(quantize(x.data(), k, kp, q2.data(), d2.data(), s2.data()));
      EXPECT_EQ(q1, q2) << name << " k=" << k;
      EXPECT_EQ(0, std::memcmp(d1.data(), d2.data(), sizeof(float) * nb)) << name << " k=" << k;
      EXPECT_EQ(s1, s2) << name << " k=" << k;
      for (int64_t bad_at : {int64_t{0}, k / 2, k - 1}) {
        for (float bad : {std::nanf(""), INFINITY, -INFINITY}) {
          std::vector<float> y = x;
          y[bad_at] = bad;
          EXPECT_FALSE(qgemm::quantize_row_scalar(y.data(), k, kp, q1.data(), d1.data(), s1.data()));
          EXPECT_FALSE(quantize(y.data(), k, kp, q2.data(), d2.data(), s2.data())) << name << " " << k << " " << bad_at;
          EXPECT_EQ(q1, q2) << name << " k=" << k << " bad at " << bad_at;
          EXPECT_EQ(s1, s2) << name << " k=" << k << " bad at " << bad_at;
        }
      }
    }
  }
}

TEST(QuantizedLinear, FormatNames) {
  EXPECT_EQ(parse_weight_format("q4"), WeightFormat::kQ4);
  EXPECT_EQ(parse_weight_format("int8"), WeightFormat::kInt8);
  EXPECT_STREQ(weight_format_name(WeightFormat::kQ4), "q4");
  EXPECT_THROW(parse_weight_format("q3"), Error);
}

}  // namespace
}  // namespace shardlm
