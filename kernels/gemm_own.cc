// The own GEMM driver (threading and cache blocking), weight packing and the scalar micro-kernel.
// See gemm_own.h for the packed layout and the exact arithmetic every path reproduces.
#include "kernels/gemm_own.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/error.h"
#include "common/half.h"
#include "kernels/weight_shape.h"

namespace shardlm::gemm {
namespace {

// Scalar micro-kernel: one panel, one row, std::fma so that it matches the SIMD paths bit for bit.
template <bool kBf16>
void scalar_micro(const float* x, int64_t /*ldx*/, const void* wv, int64_t /*panel_stride*/, int64_t k, int64_t k0,
                  int64_t k1, float* y, int64_t /*ldy*/, int valid_last) {
  const int64_t len = chunk_len(k);
  for (int64_t c0 = k0; c0 < k1; c0 += len) {
    const int64_t c1 = std::min(c0 + len, k1);
    float s[kPanel] = {};
    const ChunkRows rows = chunk_rows(c0, k, len);
    for (int64_t kk = c0; kk < c1; ++kk) {
      const float xv = x[kk];
      const int64_t row = rows.row(kk - c0) * kPanel;
      for (int64_t c = 0; c < kPanel; ++c) {
        float wf;
        if constexpr (kBf16) {
          wf = bf16_to_f32(static_cast<const uint16_t*>(wv)[row + c]);
        } else {
          wf = static_cast<const float*>(wv)[row + c];
        }
        s[c] = std::fma(xv, wf, s[c]);
      }
    }
    for (int c = 0; c < valid_last; ++c) y[c] = y[c] + s[c];
  }
}

MicroKernelSet make_scalar_set() {
  MicroKernelSet set;
  set.mr_max = 1;
  set.nr_max[1] = 1;
  set.f32[1][1] = &scalar_micro<false>;
  set.bf16[1][1] = &scalar_micro<true>;
  return set;
}

// Panels per tile of a decode of m (<= mr_max) rows.
int decode_tile_panels(const MicroKernelSet& ks, const PackedWeights& w, int64_t m) {
  return decode_tile_width(m, ks.gemv_streams, ks.gemv_nr, ks.nr_max[m]);
}

// Units [p0, p1) of all m rows (panels, or a GEMV's groups of panels in `blocks` blocks:
// schedule_units): this thread's share of the output.
void run_panels(const MicroKernelSet& ks, const PackedWeights& w, const float* x, int64_t m, float* y,
                bool accumulate, int64_t p0, int64_t p1, int blocks = 1) {
  const int64_t n = w.n, k = w.k;
  const int64_t n_panels = w.panels();
  const int last_valid = static_cast<int>(n - (n_panels - 1) * kPanel);
  const size_t esize = w.bf16 ? sizeof(uint16_t) : sizeof(float);
  const char* wbase = static_cast<const char*>(w.data());
  const int64_t pstride = w.panel_stride();
  const int64_t len = chunk_len(k);  // the k chunks of the arithmetic

  auto tile = [&](int64_t i0, int mr, int64_t g, int nr, int64_t k0, int64_t k1) {
    const MicroKernel fn = w.bf16 ? ks.bf16[mr][nr] : ks.f32[mr][nr];
    const int valid = (g + nr == n_panels) ? last_valid : static_cast<int>(kPanel);
    fn(x + i0 * k, k, wbase + static_cast<size_t>(g * pstride) * esize, pstride, k, k0, k1, y + i0 * n + g * kPanel, n,
       valid);
  };
  // Row tiles: as even as possible, at most mr_max rows each.
  const int64_t n_row_tiles = (m + ks.mr_max - 1) / ks.mr_max;
  auto row_tile = [&](int64_t t, int64_t& i0, int& mr) {
    i0 = m * t / n_row_tiles;
    mr = static_cast<int>(m * (t + 1) / n_row_tiles - i0);
  };

  if (m == 1 && ks.gemv_streams > 1) {
    const int s = ks.gemv_streams;
    const MicroKernel group = w.bf16 ? ks.bf16[1][s] : ks.f32[1][s];
    gemv_streams(
        s, p0, p1, n_panels, last_valid, y, accumulate,
        [&](int64_t g, int64_t distance, float* ys, int valid, int64_t) {
          group(x, k, wbase + static_cast<size_t>(g * pstride) * esize, distance * pstride, k, 0, k, ys, n, valid);
        },
        [&](int64_t g) { tile(0, 1, g, 1, 0, k); }, 0, blocks);
    return;
  }
  // Panels [p0, p1).
  const int64_t col0 = p0 * kPanel, col1 = std::min(p1 * kPanel, n);
  if (col0 >= col1) return;
  if (!accumulate) {
    for (int64_t i = 0; i < m; ++i) std::memset(y + i * n + col0, 0, sizeof(float) * (col1 - col0));
  }
  if (n_row_tiles == 1) {
    // Decode / tiny batches: each panel group streams through the whole of k once.
    const int mr = static_cast<int>(m);
    const int nr_max = decode_tile_panels(ks, w, m);
    for (int64_t g = p0; g < p1; g += nr_max) {
      tile(0, mr, g, static_cast<int>(std::min<int64_t>(nr_max, p1 - g)), 0, k);
    }
    return;
  }
  if (static_cast<double>(m) * static_cast<double>(k) * sizeof(float) <= 512.0 * 1024) {
    // Small batches (x stays in L2): panel groups still stream sequentially through k; each k chunk
    // of the group (a few KiB, in L1) is used by every row tile before moving on.
    const int nr_max = ks.nr_max[(m + n_row_tiles - 1) / n_row_tiles];  // fits the largest row tile
    for (int64_t g = p0; g < p1; g += nr_max) {
      const int nr = static_cast<int>(std::min<int64_t>(nr_max, p1 - g));
      for (int64_t c0 = 0; c0 < k; c0 += len) {
        const int64_t c1 = std::min(c0 + len, k);
        for (int64_t t = 0; t < n_row_tiles; ++t) {
          int64_t i0;
          int mr;
          row_tile(t, i0, mr);
          tile(i0, mr, g, nr, c0, c1);
        }
      }
    }
    return;
  }
  // Larger batches: a block of panels x one k chunk of weights (<= ~256 KiB) stays in L2 while all
  // row tiles pass over it; the x chunk (m KiB) is reused across the panel block.
  const int64_t block_panels = std::max<int64_t>(1, (256 * 1024) / (len * kPanel * static_cast<int64_t>(esize)));
  for (int64_t pb = p0; pb < p1; pb += block_panels) {
    const int64_t pe = std::min(pb + block_panels, p1);
    for (int64_t c0 = 0; c0 < k; c0 += len) {
      const int64_t c1 = std::min(c0 + len, k);
      for (int64_t t = 0; t < n_row_tiles; ++t) {
        int64_t i0;
        int mr;
        row_tile(t, i0, mr);
        const int nr_max = ks.nr_max[mr];
        for (int64_t g = pb; g < pe; g += nr_max) {
          tile(i0, mr, g, static_cast<int>(std::min<int64_t>(nr_max, pe - g)), c0, c1);
        }
      }
    }
  }
}

}  // namespace

const MicroKernelSet& scalar_kernels() {
  static const MicroKernelSet set = make_scalar_set();
  return set;
}

PackedWeights pack_f32(const float* w, int64_t n, int64_t k, bool to_bf16) {
  check_weight_shape(n, k);
  PackedWeights p;
  p.n = n;
  p.k = k;
  p.bf16 = to_bf16;
  const int64_t panels = p.panels();
  const size_t total = static_cast<size_t>(panels * p.panel_stride());
  if (to_bf16) {
    p.b16 = AlignedBuffer<uint16_t>::long_lived(total);
  } else {
    p.f32 = AlignedBuffer<float>::long_lived(total);
  }
#pragma omp parallel for schedule(static)
  for (int64_t pi = 0; pi < panels; ++pi) {
    for (int64_t c = 0; c < kPanel; ++c) {
      const int64_t row = pi * kPanel + c;
      if (row >= n) break;  // padding stays zero
      const float* src = w + row * k;
      const size_t base = static_cast<size_t>(pi * p.panel_stride() + c);
      for_each_k_row(k, [&](int64_t kk, int64_t row) {
        if (to_bf16) {
          p.b16[base + row * kPanel] = f32_to_bf16(src[kk]);
        } else {
          p.f32[base + row * kPanel] = src[kk];
        }
      });
    }
  }
  return p;
}

PackedWeights pack_bf16(const uint16_t* w, int64_t n, int64_t k, bool to_f32) {
  check_weight_shape(n, k);
  PackedWeights p;
  p.n = n;
  p.k = k;
  p.bf16 = !to_f32;
  const int64_t panels = p.panels();
  const size_t total = static_cast<size_t>(panels * p.panel_stride());
  if (to_f32) {
    p.f32 = AlignedBuffer<float>::long_lived(total);
  } else {
    p.b16 = AlignedBuffer<uint16_t>::long_lived(total);
  }
#pragma omp parallel for schedule(static)
  for (int64_t pi = 0; pi < panels; ++pi) {
    for (int64_t c = 0; c < kPanel; ++c) {
      const int64_t row = pi * kPanel + c;
      if (row >= n) break;
      const uint16_t* src = w + row * k;
      const size_t base = static_cast<size_t>(pi * p.panel_stride() + c);
      for_each_k_row(k, [&](int64_t kk, int64_t row) {
        if (to_f32) {
          p.f32[base + row * kPanel] = bf16_to_f32(src[kk]);
        } else {
          p.b16[base + row * kPanel] = src[kk];
        }
      });
    }
  }
  return p;
}

namespace {
const MicroKernelSet& kernels_at(Isa isa) {
  return isa == Isa::kAvx512 ? avx512_kernels() : isa == Isa::kAvx2 ? avx2_kernels() : scalar_kernels();
}
}  // namespace

void gemm(const PackedWeights& w, const float* x, int64_t m, float* y, bool accumulate, Isa isa) {
  if (m <= 0 || w.n == 0) return;
  const MicroKernelSet& ks = kernels_at(isa);
  const bool decode = m <= ks.mr_max;
  for_each_panel_range(m, w.n, w.k, w.panels(), ks.gemv_streams, 0, w.bytes(), decode,
                       decode ? decode_tile_panels(ks, w, m) : 1,
                       [&](int64_t p0, int64_t p1, int blocks) { run_panels(ks, w, x, m, y, accumulate, p0, p1, blocks); });
}

void gemm_group(const GemmTask* tasks, size_t count, Isa isa) {
  const MicroKernelSet& ks = kernels_at(isa);
  for_each_task_share(
      tasks, count, ks.mr_max, ks.gemv_streams, kEvenStreams,
      [&](size_t i, int64_t p0, int64_t p1) { run_panels(ks, *tasks[i].w, tasks[i].x, tasks[i].m, tasks[i].y, false, p0, p1); });
}

}  // namespace shardlm::gemm
