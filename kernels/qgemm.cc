// The quantised GEMM: weight quantisation and packing, activation quantisation, the threading and
// cache-blocking driver and the scalar micro-kernel. Layout and arithmetic: qgemm.h.
#include "kernels/qgemm.h"

#include <emmintrin.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#include "common/error.h"
#include "common/half.h"
#include "kernels/weight_shape.h"

namespace shardlm::qgemm {
namespace {

// Offsets inside a panel.
int64_t int8_scale_offset() { return 0; }

// Byte of column c, k index kk (within its block) in a block's data.
int64_t int8_byte(int64_t c, int64_t kk) { return (kk / 4) * 64 + c * 4 + kk % 4; }
// Byte and nibble (0 low, 1 high) of column c, k index kk (within its block) in a q4 block.
int64_t q4_byte(int64_t c, int64_t kk) { return (kk / 8) * 64 + c * 4 + kk % 4; }
int q4_nibble(int64_t kk) { return static_cast<int>((kk % 8) / 4); }

// Quantising rows at load, with SSE2 (every x86-64 CPU): cvtps2dq rounds half to even in the default
// rounding mode, exactly as std::nearbyint, and the packs saturate before the clamps, so the result
// is the one of the formulas in qgemm.h.

// Whether any of the n values is infinite or NaN (exponent bits all ones).
bool any_non_finite(const float* v, int64_t n) {
  const __m128i exp = _mm_set1_epi32(0x7f800000);
  __m128i bad = _mm_setzero_si128();
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const __m128i bits = _mm_loadu_si128(reinterpret_cast<const __m128i*>(v + i));
    bad = _mm_or_si128(bad, _mm_cmpeq_epi32(_mm_and_si128(bits, exp), exp));
  }
  bool any = _mm_movemask_epi8(bad) != 0;
  for (; i < n; ++i) any = any || !std::isfinite(v[i]);
  return any;
}

float abs_max(const float* v, int64_t n) {
  const __m128 mask = _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff));
  __m128 m = _mm_setzero_ps();
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) m = _mm_max_ps(m, _mm_and_ps(_mm_loadu_ps(v + i), mask));
  float lanes[4];
  _mm_storeu_ps(lanes, m);
  float a = std::max(std::max(lanes[0], lanes[1]), std::max(lanes[2], lanes[3]));
  for (; i < n; ++i) a = std::max(a, std::fabs(v[i]));
  return a;
}

// 16 values v * id rounded (half to even) and clamped to [lo, hi], as 16 signed bytes.
__m128i quantize16(const float* v, __m128 id, int16_t lo, int16_t hi) {
  const __m128i a = _mm_cvtps_epi32(_mm_mul_ps(_mm_loadu_ps(v), id));
  const __m128i b = _mm_cvtps_epi32(_mm_mul_ps(_mm_loadu_ps(v + 4), id));
  const __m128i c = _mm_cvtps_epi32(_mm_mul_ps(_mm_loadu_ps(v + 8), id));
  const __m128i d = _mm_cvtps_epi32(_mm_mul_ps(_mm_loadu_ps(v + 12), id));
  const __m128i vlo = _mm_set1_epi16(lo), vhi = _mm_set1_epi16(hi);
  const __m128i ab = _mm_min_epi16(_mm_max_epi16(_mm_packs_epi32(a, b), vlo), vhi);
  const __m128i cd = _mm_min_epi16(_mm_max_epi16(_mm_packs_epi32(c, d), vlo), vhi);
  return _mm_packs_epi16(ab, cd);
}

// One int8 row (kp values, zero-padded) into column c of its panel; its scale is max_abs / 127
// where max_abs >= 0 is given (at least the row's own largest magnitude), else from the row.
void pack_int8_row(const float* row, int64_t k, int64_t nb, int64_t c, uint8_t* panel, float max_abs) {
  const float d = (max_abs >= 0.0f ? max_abs : abs_max(row, k)) / 127.0f;
  const float idf = d > 0.0f ? 1.0f / d : 0.0f;
  std::memcpy(panel + int8_scale_offset() + c * 4, &d, 4);
  const __m128 id = _mm_set1_ps(idf);
  const __m128i bias = _mm_set1_epi8(static_cast<char>(0x80));  // q + 128
  for (int64_t b = 0; b < nb; ++b) {
    const float* blk = row + b * kBlock;
    uint8_t q[kBlock];
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q), _mm_xor_si128(quantize16(blk, id, -127, 127), bias));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16), _mm_xor_si128(quantize16(blk + 16, id, -127, 127), bias));
    uint8_t* data = panel + int8_block_offset(b) + c * 4;
    for (int64_t g = 0; g < kBlock / 4; ++g) std::memcpy(data + g * 64, q + g * 4, 4);
  }
}

// One q4 row (kp values, zero-padded) into column c of its panel.
void pack_q4_row(const float* row, int64_t nb, int64_t c, uint8_t* panel) {
  const __m128i eight = _mm_set1_epi8(8);
  for (int64_t b = 0; b < nb; ++b) {
    const float* blk = row + b * kBlock;
    // The block's value of largest magnitude (the first one of equal magnitudes).
    const float am = abs_max(blk, kBlock);
    float wm = 0.0f;
    for (int64_t j = 0; j < kBlock; ++j) {
      if (std::fabs(blk[j]) == am) {
        wm = blk[j];
        break;
      }
    }
    const uint16_t d16 = f32_to_f16(wm / -8.0f);
    const float d = f16_to_f32(d16);
    const __m128 id = _mm_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
    std::memcpy(panel + q4_scale_offset(b) + c * 2, &d16, 2);
    uint8_t* data = panel + q4_data_offset(b) + c * 4;
    // Pair h of 8 k: byte j holds k = 8h + j (low nibble) and k = 8h + 4 + j (high nibble). Each
    // vector holds two pairs; shifting it by 4 bytes lines the high nibbles up with the low ones.
    for (int64_t half = 0; half < 2; ++half) {
      const __m128i q = _mm_add_epi8(quantize16(blk + half * 16, id, -8, 7), eight);
      const __m128i packed = _mm_or_si128(q, _mm_slli_epi16(_mm_srli_si128(q, 4), 4));
      const int32_t pair0 = _mm_cvtsi128_si32(packed), pair1 = _mm_cvtsi128_si32(_mm_srli_si128(packed, 8));
      std::memcpy(data + (2 * half) * 64, &pair0, 4);
      std::memcpy(data + (2 * half + 1) * 64, &pair1, 4);
    }
  }
}

template <typename Row>
PackedWeights pack(int64_t n, int64_t k, Format format, Row row_of, const float* row_max_abs = nullptr) {
  check_weight_shape(n, k);
  PackedWeights p;
  p.format = format;
  p.n = n;
  p.k = k;
  const int64_t kp = p.kp(), nb = p.blocks(), stride = p.panel_stride();
  p.data = AlignedBuffer<uint8_t>::long_lived(static_cast<size_t>(p.panels() * stride));
  // Padding columns and padding k stay as the zero of the format (stored value 128 / nibble 8).
  const uint8_t zero = format == Format::kInt8 ? 128 : 0x88;
  std::atomic<int64_t> bad_row{-1};  // a row with a non-finite value (reported after the loop)
  std::atomic<int64_t> bad_scale{-1};  // a row larger than its given maximum
#pragma omp parallel
  {
    std::vector<float> row(static_cast<size_t>(kp));
#pragma omp for schedule(static)
    for (int64_t pi = 0; pi < p.panels(); ++pi) {
      uint8_t* panel = p.data.data() + pi * stride;
      if (format == Format::kInt8) {
        for (int64_t b = 0; b < nb; ++b) std::memset(panel + int8_block_offset(b), zero, 512);
      } else {
        for (int64_t b = 0; b < nb; ++b) std::memset(panel + q4_data_offset(b), zero, 256);
      }
      for (int64_t c = 0; c < kPanel; ++c) {
        const int64_t r = pi * kPanel + c;
        if (r >= n) break;
        row_of(r, row.data());  // (k values; the padding to kp stays 0)
        if (any_non_finite(row.data(), k)) {
          bad_row.store(r);
          continue;
        }
        if (format == Format::kInt8) {
          if (row_max_abs && !(row_max_abs[r] >= abs_max(row.data(), k))) {
            bad_scale.store(r);
            continue;
          }
          pack_int8_row(row.data(), k, nb, c, panel, row_max_abs ? row_max_abs[r] : -1.0f);
        } else {
          pack_q4_row(row.data(), nb, c, panel);
        }
      }
    }
  }
  if (bad_row.load() >= 0) fail("weight row {} has a value that is not finite; it cannot be quantised", bad_row.load());
  if (bad_scale.load() >= 0) {
    fail("internal: weight row {} has a value larger than the maximum magnitude given for it ({})", bad_scale.load(),
         row_max_abs[bad_scale.load()]);
  }
  return p;
}

// Integer dot product of one column c of a block with a row's 32 quantised activations.
int32_t block_dot(const PackedWeights& w, const uint8_t* panel, int64_t nb, int64_t b, int64_t c, const int8_t* xq) {
  int32_t s = 0;
  if (w.format == Format::kInt8) {
    const uint8_t* data = panel + int8_block_offset(b);
    for (int64_t j = 0; j < kBlock; ++j) s += static_cast<int32_t>(xq[j]) * (static_cast<int32_t>(data[int8_byte(c, j)]) - 128);
  } else {
    const uint8_t* data = panel + q4_data_offset(b);
    for (int64_t j = 0; j < kBlock; ++j) {
      const uint8_t byte = data[q4_byte(c, j)];
      const int q = (q4_nibble(j) == 0 ? (byte & 0x0F) : (byte >> 4)) - 8;
      s += static_cast<int32_t>(xq[j]) * q;
    }
  }
  return s;
}

// Scalar micro-kernel (one row, one panel): the reference arithmetic of qgemm.h with std::fma.
template <Format kFormat>
void scalar_micro(const MicroArgs& a) {
  PackedWeights shape;  // only format is read by block_dot
  shape.format = kFormat;
  for (int c = 0; c < a.valid_last; ++c) {
    float t = a.y[c];
    for (int64_t c0 = a.b0; c0 < a.b1; c0 += kChunkBlocks) {
      const int64_t c1 = std::min(c0 + kChunkBlocks, a.b1);
      float f = 0.0f;
      for (int64_t b = c0; b < c1; ++b) {
        const float s = static_cast<float>(block_dot(shape, a.w, a.nb, b, c, a.xq + b * kBlock));
        if constexpr (kFormat == Format::kInt8) {
          f = std::fma(s, a.dx[b], f);
        } else {
          uint16_t d16;
          std::memcpy(&d16, a.w + q4_scale_offset(b) + c * 2, 2);
          f = std::fma(s * f16_to_f32(d16), a.dx[b], f);
        }
      }
      if constexpr (kFormat == Format::kInt8) {
        float d;
        std::memcpy(&d, a.w + int8_scale_offset() + c * 4, 4);
        t = std::fma(f, d, t);
      } else {
        t = t + f;
      }
    }
    a.y[c] = t;
  }
}

MicroKernelSet make_scalar_set() {
  MicroKernelSet set;
  set.mr_max = 1;
  set.nr_max[1] = 1;
  set.int8[1][1] = &scalar_micro<Format::kInt8>;
  set.q4[1][1] = &scalar_micro<Format::kQ4>;
  return set;
}

// Panels per tile of a decode of m (<= mr_max) rows.
int decode_tile_panels(const MicroKernelSet& ks, const PackedWeights& w, int64_t m) {
  const int gemv_nr = w.format == Format::kInt8 ? ks.int8_gemv_nr : ks.q4_gemv_nr;
  return decode_tile_width(m, ks.gemv_streams, gemv_nr, ks.nr_max[m]);
}

// The byte stride by which a GEMV's streams over w are placed (schedule_units), 0 for the even distance.
int64_t stream_panel_bytes(const MicroKernelSet& ks, const PackedWeights& w) {
  return ks.place_gemv_streams ? w.panel_stride() : 0;
}

// Units [p0, p1) of all m rows (panels, or a GEMV's groups of panels in `blocks` blocks:
// schedule_units): this thread's share of the output.
void run_panels(const MicroKernelSet& ks, const PackedWeights& w, const QuantizedRows& x, float* y, bool accumulate,
                int64_t p0, int64_t p1, int blocks = 1) {
  const int64_t n = w.n, m = x.m, nb = w.blocks();
  const int64_t n_panels = w.panels();
  const int last_valid = static_cast<int>(n - (n_panels - 1) * kPanel);
  const int64_t stride = w.panel_stride();
  const bool int8 = w.format == Format::kInt8;

  // The arguments of a tile at rows i0.., panels g.. over blocks [b0, b1) (next_g: the panel to hint).
  auto tile_args = [&](int64_t i0, int64_t g, int64_t b0, int64_t b1, int64_t next_g) {
    MicroArgs a;
    a.xq = x.xq.data() + i0 * x.kp;
    a.dx = x.dx.data() + i0 * nb;
    a.xs = x.xs.data() + i0 * nb;
    a.kp = x.kp;
    a.nb = nb;
    a.w = w.data.data() + g * stride;
    a.panel_stride = stride;
    a.b0 = b0;
    a.b1 = b1;
    a.y = y + i0 * n + g * kPanel;
    a.ldy = n;
    a.valid_last = static_cast<int>(kPanel);
    a.next_w = next_g >= 0 ? w.data.data() + next_g * stride : nullptr;
    return a;
  };
  auto tile = [&](int64_t i0, int mr, int64_t g, int nr, int64_t b0, int64_t b1, int64_t next_g = -1) {
    MicroArgs a = tile_args(i0, g, b0, b1, next_g);
    if (g + nr == n_panels) a.valid_last = last_valid;
    (int8 ? ks.int8[mr][nr] : ks.q4[mr][nr])(a);
  };
  const int64_t n_row_tiles = (m + ks.mr_max - 1) / ks.mr_max;
  const int s = ks.gemv_streams;
  if (m == 1 && s > 1) {
    gemv_streams(
        s, p0, p1, n_panels, last_valid, y, accumulate,
        [&](int64_t g, int64_t distance, float* ys, int valid, int64_t next) {
          // The tile of panels g, g + distance, .., writing ys; it prefetches the panels of the next unit.
          MicroArgs a = tile_args(0, g, 0, nb, next);
          a.panel_stride = distance * stride;
          a.y = ys;
          a.valid_last = valid;
          (int8 ? ks.int8[1][s] : ks.q4[1][s])(a);
        },
        [&](int64_t g) { tile(0, 1, g, 1, 0, nb, g + 1 < n_panels ? g + 1 : -1); }, stream_panel_bytes(ks, w), blocks);
    return;
  }
  // Panels [p0, p1).
  const int64_t col0 = p0 * kPanel, col1 = std::min(p1 * kPanel, n);
  if (col0 >= col1) return;
  if (!accumulate) {
    for (int64_t i = 0; i < m; ++i) std::memset(y + i * n + col0, 0, sizeof(float) * (col1 - col0));
  }
  if (n_row_tiles == 1) {
    // Decode: each panel group streams through the whole of k once.
    const int mr = static_cast<int>(m);
    const int nr_max = decode_tile_panels(ks, w, m);
    for (int64_t g = p0; g < p1; g += nr_max) {
      // The last tile prefetches the panels after it: this thread's next chunk, most likely.
      tile(0, mr, g, static_cast<int>(std::min<int64_t>(nr_max, p1 - g)), 0, nb, g + nr_max < n_panels ? g + nr_max : -1);
    }
    return;
  }
  // Batches: tiles of kTileRows rows where the kernel set has them (and a last one of at least
  // kTileRowsMin), the rows left over (all of them elsewhere) by the micro-kernels.
  int64_t first = 0;
  if (ks.tile_rows != nullptr && m >= kTileRowsMin) first = m % kTileRows >= kTileRowsMin ? m : m / kTileRows * kTileRows;
  const int64_t rest_tiles = (m - first + ks.mr_max - 1) / ks.mr_max;
  // A block of panels x one chunk of 8 blocks (<= ~128 KiB of weights) stays in L2 while all row
  // tiles pass over it (those on the tiles first), so that the weights come from memory once.
  const int64_t chunk_bytes = kChunkBlocks * w.block_bytes();
  const int64_t block_panels = std::max<int64_t>(1, (128 * 1024) / chunk_bytes);
  for (int64_t pb = p0; pb < p1; pb += block_panels) {
    const int64_t pe = std::min(pb + block_panels, p1);
    for (int64_t c0 = 0; c0 < nb; c0 += kChunkBlocks) {
      const int64_t c1 = std::min(c0 + kChunkBlocks, nb);
      if (first > 0) ks.tile_rows(w, x, y, first, pb, pe, c0, c1);
      for (int64_t t = 0; t < rest_tiles; ++t) {
        const int64_t i0 = first + (m - first) * t / rest_tiles;
        const int mr = static_cast<int>(first + (m - first) * (t + 1) / rest_tiles - i0);
        const int nr_max = ks.nr_max[mr];
        for (int64_t g = pb; g < pe; g += nr_max) tile(i0, mr, g, static_cast<int>(std::min<int64_t>(nr_max, pe - g)), c0, c1);
      }
    }
  }
}

}  // namespace

const MicroKernelSet& scalar_kernels() {
  static const MicroKernelSet set = make_scalar_set();
  return set;
}

namespace {
std::atomic<bool> g_use_avx_vnni{true};
std::atomic<bool> g_use_amx_int8{true};
}  // namespace

void use_avx_vnni(bool enabled) { g_use_avx_vnni.store(enabled, std::memory_order_relaxed); }
void use_amx_int8(bool enabled) { g_use_amx_int8.store(enabled, std::memory_order_relaxed); }

const MicroKernelSet& kernels_at(Isa level) {
  switch (level) {
    case Isa::kAvx512:
      return has_amx_int8() && g_use_amx_int8.load(std::memory_order_relaxed) ? avx512_amx_kernels() : avx512_kernels();
    case Isa::kAvx2:
      return has_avx_vnni() && g_use_avx_vnni.load(std::memory_order_relaxed) ? avx2_vnni_kernels() : avx2_kernels();
    case Isa::kScalar: break;
  }
  return scalar_kernels();
}

Isa kernel_isa(Isa isa) {
  if (isa == Isa::kAvx512 && !has_avx512_vnni()) return Isa::kAvx2;
  return isa;
}

PackedWeights pack_f32(const float* w, int64_t n, int64_t k, Format format) {
  return pack(n, k, format, [&](int64_t r, float* out) { std::memcpy(out, w + r * k, sizeof(float) * k); });
}

PackedWeights pack_bf16(const uint16_t* w, int64_t n, int64_t k, Format format) {
  return pack(n, k, format, [&](int64_t r, float* out) {
    for (int64_t kk = 0; kk < k; ++kk) out[kk] = bf16_to_f32(w[r * k + kk]);
  });
}

PackedWeights pack_rows(int64_t n, int64_t k, Format format, const std::function<void(int64_t, float*)>& read_row,
                        const float* row_max_abs) {
  return pack(n, k, format, read_row, row_max_abs);
}

void dequantize_row(const PackedWeights& w, int64_t r, float* out) {
  if (r < 0 || r >= w.n) fail("weight row {} outside [0, {})", r, w.n);
  const uint8_t* panel = w.data.data() + (r / kPanel) * w.panel_stride();
  const int64_t c = r % kPanel;
  if (w.format == Format::kInt8) {
    float d;
    std::memcpy(&d, panel + int8_scale_offset() + c * 4, 4);
    for (int64_t kk = 0; kk < w.k; ++kk) {
      const int q = static_cast<int>(panel[int8_block_offset(kk / kBlock) + int8_byte(c, kk % kBlock)]) - 128;
      out[kk] = static_cast<float>(q) * d;
    }
  } else {
    for (int64_t kk = 0; kk < w.k; ++kk) {
      const int64_t b = kk / kBlock;
      uint16_t d16;
      std::memcpy(&d16, panel + q4_scale_offset(b) + c * 2, 2);
      const uint8_t byte = panel[q4_data_offset(b) + q4_byte(c, kk % kBlock)];
      const int q = (q4_nibble(kk % kBlock) == 0 ? (byte & 0x0F) : (byte >> 4)) - 8;
      out[kk] = static_cast<float>(q) * f16_to_f32(d16);
    }
  }
}

bool quantize_row_scalar(const float* x, int64_t k, int64_t kp, int8_t* q, float* dx, int32_t* xs) {
  bool finite = true;
  for (int64_t b = 0; b < kp / kBlock; ++b) {
    const int64_t k0 = b * kBlock, k1 = std::min(k0 + kBlock, k);
    float amax = 0.0f;
    bool block_finite = true;
    for (int64_t kk = k0; kk < k1; ++kk) {
      amax = std::max(amax, std::fabs(x[kk]));
      block_finite = block_finite && std::isfinite(x[kk]);  // (std::max drops a NaN)
    }
    if (!block_finite) {
      finite = false;
      amax = 0.0f;
    }
    const float d = amax / 127.0f;
    const float id = d > 0.0f ? 1.0f / d : 0.0f;
    int32_t sum = 0;
    for (int64_t j = 0; j < kBlock; ++j) {
      const float v = k0 + j < k1 ? std::nearbyint(x[k0 + j] * id) : 0.0f;
      q[k0 + j] = static_cast<int8_t>(std::isfinite(v) ? std::clamp(v, -127.0f, 127.0f) : 0.0f);
      sum += q[k0 + j];
    }
    dx[b] = d;
    xs[b] = sum;
  }
  return finite;
}

void quantize_rows(const float* x, int64_t m, int64_t k, int64_t kp, QuantizedRows& out, Isa isa) {
  const int64_t nb = kp / kBlock;
  out.m = m;
  out.kp = kp;
  if (out.xq.size() < static_cast<size_t>(m * kp)) out.xq.resize(static_cast<size_t>(m * kp));
  if (out.dx.size() < static_cast<size_t>(m * nb)) out.dx.resize(static_cast<size_t>(m * nb));
  if (out.xs.size() < static_cast<size_t>(m * nb)) out.xs.resize(static_cast<size_t>(m * nb));
  const Isa level = kernel_isa(isa);
  const auto quantize_row = level == Isa::kAvx512 ? &quantize_row_avx512
                            : level == Isa::kAvx2 ? &quantize_row_avx2
                                                  : &quantize_row_scalar;
  std::atomic<int64_t> bad_row{-1};
  const auto quantize = [&](int64_t i) {
    if (!quantize_row(x + i * k, k, kp, out.xq.data() + i * kp, out.dx.data() + i * nb, out.xs.data() + i * nb)) bad_row.store(i);
  };
  // Small inputs (every decode) on the calling thread without entering a parallel region: even one
  // that OpenMP runs serially (an if clause) costs ~0.4 us, a quarter of quantising a row of 2816.
  if (m * k > 65536 && m > 1) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < m; ++i) quantize(i);
  } else {
    for (int64_t i = 0; i < m; ++i) quantize(i);
  }
  if (bad_row.load() >= 0) fail("activation row {} has a value that is not finite", bad_row.load());
}

void gemm(const PackedWeights& w, const float* x, int64_t m, float* y, bool accumulate, Isa isa) {
  if (m <= 0 || w.n == 0) return;
  thread_local QuantizedRows rows;
  quantize_rows(x, m, w.k, w.kp(), rows, isa);
  const MicroKernelSet& ks = kernels_at(kernel_isa(isa));
  const QuantizedRows& shared = rows;
  const bool decode = m <= ks.mr_max;
  for_each_panel_range(m, w.n, w.k, w.panels(), ks.gemv_streams, stream_panel_bytes(ks, w), w.bytes(), decode,
                       decode ? decode_tile_panels(ks, w, m) : 1,
                       [&](int64_t p0, int64_t p1, int blocks) { run_panels(ks, w, shared, y, accumulate, p0, p1, blocks); });
}

void gemm_group(const GemmTask* tasks, size_t count, Isa isa) {
  thread_local std::vector<QuantizedRows> rows;
  if (rows.size() < count) rows.resize(count);
  // Task i's activations are rows[source[i]]: tasks with the same input (x, m, k), such as the
  // gate+up products of the experts a decoded token is routed to, share one quantisation.
  thread_local std::vector<size_t> source;
  source.assign(count, 0);
  for (size_t i = 0; i < count; ++i) {
    const GemmTask& task = tasks[i];
    source[i] = i;
    if (task.m <= 0 || task.w->n == 0) continue;
    for (size_t j = 0; j < i; ++j) {
      const GemmTask& other = tasks[j];
      if (source[j] == j && other.x == task.x && other.m == task.m && other.w->k == task.w->k && other.w->n > 0) {
        source[i] = j;
        break;
      }
    }
    if (source[i] == i) quantize_rows(task.x, task.m, task.w->k, task.w->kp(), rows[i], isa);
  }
  const MicroKernelSet& ks = kernels_at(kernel_isa(isa));
  const std::vector<QuantizedRows>& shared = rows;
  const std::vector<size_t>& from = source;
  for_each_task_share(
      tasks, count, ks.mr_max, ks.gemv_streams, [&](const PackedWeights& w) { return stream_panel_bytes(ks, w); },
      [&](size_t i, int64_t p0, int64_t p1) { run_panels(ks, *tasks[i].w, shared[from[i]], tasks[i].y, false, p0, p1); });
}

}  // namespace shardlm::qgemm
