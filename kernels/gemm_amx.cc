// The AMX bf16 GEMM: weight packing, activation tiles, the tile kernel and its cache blocking. See
// gemm_amx.h for the layout and the arithmetic.
#include "kernels/gemm_amx.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <vector>

#include "common/error.h"
#include "common/half.h"
#include "kernels/cpu_features.h"
#include "kernels/weight_shape.h"

#define SHARDLM_AMX \
  __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma")))

namespace shardlm::amx {
namespace {

constexpr int64_t kAccElems = kPanel * kPanel;  // f32 elements of a 16 x 16 accumulator tile
// A prefill's activation tiles of one k block (all rows) take at most this much, so that they stay
// in L2 while a group of column blocks passes over them (512 rows: 8 steps of 32 k; measured on the
// 31B MLP shapes, 512 rows, two threads: 2.0-2.7 TFLOP/s against 1.6-2.4 with 512 KiB); a decode's
// k block is the whole of k.
constexpr int64_t kRowsBlockBytes = 256 * 1024;
// How far ahead a decode's tile rows prefetch the weights (see tile_block).
constexpr int64_t kStreamAheadBytes = 1536;
// Column blocks (of 32 columns) whose accumulators a thread keeps between k blocks.
constexpr int64_t kGroupBlocks = 8;
constexpr int64_t kTileLines = kTileElems * static_cast<int64_t>(sizeof(uint16_t)) / 64;  // cache lines of a tile

// A prefill reads each k block's weight panels from memory once, while its first row tiles multiply
// them: a panel's part of a k block is contiguous for only 8-16 KiB, too short for the hardware
// prefetchers, so that pass ran at a third of the others' speed. Where a k block's panels are at most
// kPrefetchMaxSteps steps long, the weights of the next k block (or of the next group's first) are
// prefetched into L2 while the current one is multiplied: each tile block takes an even share, a part
// before each of its steps. Measured on a Xeon with AMX, the 31B MLP shapes at two threads: 512 rows
// (8 steps) 50-53 -> 44-47 ms a call, 256 rows (16 steps) 31-32 -> 29 ms; with 128 or 64 rows (32,
// 64 steps: longer contiguous runs, twice the L2 footprint) it was slower (19 -> 21 ms, 13 -> 17 ms),
// so those are left to the hardware.
constexpr int64_t kPrefetchMaxSteps = 16;
class NextPanels {
 public:
  NextPanels(const PackedWeights& w, int64_t g0, int64_t g1, int64_t s0, int64_t steps, int64_t block_steps,
             int64_t u1, int64_t blocks)
      : block_stride_bytes_(2 * w.panel_stride() * static_cast<int64_t>(sizeof(uint16_t))), blocks_(blocks) {
    int64_t next_s0 = s0 + block_steps, next_g0 = g0, next_g1 = g1;
    if (next_s0 >= steps) {
      next_s0 = 0;
      next_g0 = g1;
      next_g1 = std::min(g1 + kGroupBlocks, u1);
    }
    lines_per_block_ = 2 * std::min(block_steps, steps - next_s0) * kTileLines;
    lines_ = next_g1 > next_g0 ? (next_g1 - next_g0) * lines_per_block_ : 0;
    first_ = reinterpret_cast<const char*>(w.b16.data() + 2 * next_g0 * w.panel_stride() + 2 * next_s0 * kTileElems);
  }
  // Tile block `block` (0-based) of this k block begins: its share is the lines up to (block + 1) / blocks.
  void begin(int64_t block) {
    from_ = done_;
    to_ = lines_ * (block + 1) / blocks_;
  }
  // Its step s of `steps`: the part of the share up to (s + 1) / steps.
  void step(int64_t s, int64_t steps) {
    const int64_t upto = from_ + (to_ - from_) * (s + 1) / steps;
    for (; done_ < upto; ++done_) {
      const int64_t block = done_ / lines_per_block_, line = done_ % lines_per_block_;
      _mm_prefetch(first_ + block * block_stride_bytes_ + line * 64, _MM_HINT_T1);
    }
  }

 private:
  int64_t block_stride_bytes_;
  int64_t blocks_;
  int64_t lines_per_block_ = 0;
  int64_t lines_ = 0;
  int64_t done_ = 0;
  int64_t from_ = 0;
  int64_t to_ = 0;
  const char* first_ = nullptr;
};

// Always zero: read by pace().
inline volatile int g_pace = 0;
// Three reads of g_pace and a branch on the last before each operand tile load of a prefill tile
// block (loads from L1 that change nothing). Measured on a Xeon with AMX, 31B MLP up, 512 rows, one
// thread, alternated in the same runs (with the prefetch above): 48-50 -> 42-43 ms a call; one read
// and a branch 44-45, a branch on a register instead of a load 45-48, the reads without the branch
// 46-49, 6-12 reads 42-45, 20 reads 54-57; four nops no change. As with the own bf16 GEMV's paced
// prefetch (gemm_own_avx512.cc), why a slower issue of the loads helps on this core is not known.
[[gnu::always_inline]] inline void pace() {
  (void)g_pace;
  (void)g_pace;
  if (g_pace != 0) __builtin_trap();
}

template <typename Value>
PackedWeights pack(const Value* w, int64_t n, int64_t k) {
  check_weight_shape(n, k);
  PackedWeights p;
  p.n = n;
  p.k = k;
  const int64_t panels = 2 * p.panels();
  p.b16 = AlignedBuffer<uint16_t>::long_lived(static_cast<size_t>(panels * p.panel_stride()));
#pragma omp parallel for schedule(static)
  for (int64_t pi = 0; pi < panels; ++pi) {
    for (int64_t r = pi * kPanel; r < (pi + 1) * kPanel && r < n; ++r) {
      const Value* src = w + r * k;
      for (int64_t kk = 0; kk < k; ++kk) {
        uint16_t v;
        if constexpr (sizeof(Value) == sizeof(float)) {
          v = f32_to_bf16(src[kk]);
        } else {
          v = src[kk];
        }
        p.b16[p.index(r, kk)] = v;
      }
    }
  }
  return p;
}

// The activations as operand tiles: rows in blocks of 16, block b holding k_padded / 32 tiles of 16
// rows x 32 bf16, contiguous. Rows past m keep whatever the buffer held (their outputs are never
// written; a tile row only ever meets its own row); k past k is zero.
SHARDLM_AMX void pack_rows(const float* x, int64_t m, int64_t k, int64_t kp, uint16_t* out) {
  const int64_t steps = kp / kStep;
#pragma omp parallel for schedule(static) if (m * k > (1 << 18))
  for (int64_t i = 0; i < m; ++i) {
    const float* row = x + i * k;
    uint16_t* dst = out + (i / kPanel) * steps * kTileElems + (i % kPanel) * kStep;
    for (int64_t s = 0; s < steps; ++s) {
      const int64_t k0 = s * kStep;
      const int64_t valid = std::min<int64_t>(kStep, k - k0);
      __m512 lo, hi;
      if (valid == kStep) {
        lo = _mm512_loadu_ps(row + k0);
        hi = _mm512_loadu_ps(row + k0 + 16);
      } else {
        const auto mask = [](int64_t count) {
          return static_cast<__mmask16>(count <= 0 ? 0 : count >= 16 ? 0xffff : (1u << count) - 1);
        };
        lo = _mm512_maskz_loadu_ps(mask(valid), row + k0);
        hi = _mm512_maskz_loadu_ps(mask(valid - 16), row + k0 + 16);
      }
      // Round to nearest even, NaN kept a NaN (vcvtne2ps2bf16); the high half goes to the upper lanes.
      _mm512_store_si512(dst + s * kTileElems, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
  }
}

// One tile of output: kRows row tiles (1 or 2) x 2 panels over `steps` k steps. a0/a1 point at the
// row tiles' first operand tile (each advances 1 KiB per step), b0/b1 at the panels' (b1 = b0 + one
// tile; each advances 2 KiB per step, the block's two tiles of a step being adjacent); c[2r + j] the
// accumulator of row tile r, panel j (16 x 16 f32, contiguous), loaded unless `first`. kStream (a
// decode, whose panels come from memory once): each step prefetches the block kStreamAheadBytes
// ahead into L2 — measured on a Xeon with AMX with the panels of a block apart (two streams), the
// tile loads alone streamed at 0.73-0.77 of the read bandwidth, 2 KiB ahead 0.81-0.89 (into L1:
// 0.81-0.88, 4-8 KiB: 0.77-0.85); with the block one stream (31B MLP up, one thread, alternated in
// the same runs) 768 B-1.5 KiB ahead 0.78-0.82 (the two streams in the same runs 0.75-0.78), 2 KiB
// 0.72-0.80, 4-8 KiB 0.62-0.67, into L1 0.77-0.85. Otherwise (a prefill) each step prefetches its
// part of `next`'s share (when not null) and each operand tile load is paced.
template <int kRows, bool kStream>
SHARDLM_AMX inline void tile_block(const uint16_t* a0, const uint16_t* a1, const uint16_t* b0, const uint16_t* b1,
                                   int64_t steps, bool first, float* const* c, NextPanels* next) {
  constexpr int kStride = 64;
  if (first) {
    _tile_zero(0);
    _tile_zero(1);
    if constexpr (kRows == 2) {
      _tile_zero(2);
      _tile_zero(3);
    }
  } else {
    _tile_loadd(0, c[0], kStride);
    _tile_loadd(1, c[1], kStride);
    if constexpr (kRows == 2) {
      _tile_loadd(2, c[2], kStride);
      _tile_loadd(3, c[3], kStride);
    }
  }
  // Loads interleaved with the multiplies that free their tiles.
  for (int64_t s = 0; s < steps; ++s) {
    const int64_t at = s * kTileElems, bt = 2 * at;
    if constexpr (kStream) {
      const char* ahead = reinterpret_cast<const char*>(b0 + bt) + kStreamAheadBytes;
      for (int64_t line = 0; line < 2 * kTileLines; ++line) _mm_prefetch(ahead + 64 * line, _MM_HINT_T1);
    } else if (next != nullptr) {
      next->step(s, steps);
    }
    constexpr bool kPaced = !kStream;
    if constexpr (kPaced) pace();
    _tile_loadd(4, a0 + at, kStride);
    if constexpr (kPaced) pace();
    _tile_loadd(6, b0 + bt, kStride);
    _tile_dpbf16ps(0, 4, 6);
    if constexpr (kPaced) pace();
    _tile_loadd(7, b1 + bt, kStride);
    _tile_dpbf16ps(1, 4, 7);
    if constexpr (kRows == 2) {
      if constexpr (kPaced) pace();
      _tile_loadd(5, a1 + at, kStride);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
  }
  _tile_stored(0, c[0], kStride);
  _tile_stored(1, c[1], kStride);
  if constexpr (kRows == 2) {
    _tile_stored(2, c[2], kStride);
    _tile_stored(3, c[3], kStride);
  }
}

// y (+)= the accumulators of column blocks [g0, g1) (acc: row tile r, panel j of the group at
// (r * 2 * kGroupBlocks + j) * kAccElems) for the rows [0, m).
SHARDLM_AMX void write_rows(const float* acc, int64_t m, int64_t n, int64_t g0, int64_t g1, float* y, bool accumulate) {
  for (int64_t i = 0; i < m; ++i) {
    const float* src = acc + (i / kPanel) * 2 * kGroupBlocks * kAccElems + (i % kPanel) * kPanel;
    for (int64_t j = 0; j < 2 * (g1 - g0); ++j) {
      const int64_t col = (2 * g0 + j) * kPanel;
      const int64_t valid = std::min<int64_t>(kPanel, n - col);
      if (valid <= 0) break;
      const __mmask16 mask = static_cast<__mmask16>(valid >= 16 ? 0xffff : (1u << valid) - 1);
      __m512 v = _mm512_load_ps(src + j * kAccElems);
      float* out = y + i * n + col;
      if (accumulate) v = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, out), v);
      _mm512_mask_storeu_ps(out, mask, v);
    }
  }
}

// Accumulator scratch of the calling thread: at least `floats`, 64-byte aligned.
float* thread_accumulators(size_t floats) {
  thread_local AlignedBuffer<float> acc;
  if (acc.size() < floats) acc.resize(floats);
  return acc.data();
}

// The column blocks [u0, u1) of y for all m rows, from the activation tiles `a`.
SHARDLM_AMX void run_blocks(const PackedWeights& w, const uint16_t* a, int64_t m, float* y, bool accumulate, int64_t u0,
                            int64_t u1) {
  if (u0 >= u1) return;
  const int64_t row_tiles = (m + kPanel - 1) / kPanel;
  const int64_t steps = w.k_padded() / kStep;
  const int64_t block_steps =
      std::clamp<int64_t>(kRowsBlockBytes / (row_tiles * kTileElems * static_cast<int64_t>(sizeof(uint16_t))), 1, steps);
  const int64_t pstride = w.panel_stride();
  float* acc = thread_accumulators(static_cast<size_t>(row_tiles * 2 * kGroupBlocks * kAccElems));
  TileConfig config;  // tiles 0-3 accumulate (row tile r, panel j at 2r + j), 4-5 rows, 6-7 panels
  if (row_tiles == 1) {
    // A decode: the rows' operand and the accumulators m rows tall, so that a step loads m x 64
    // bytes of activations instead of 1 KiB and multiplies only the rows there are (each row is
    // computed alone, so the results are the same).
    for (const int t : {0, 1, 4}) config.rows[t] = static_cast<uint8_t>(m);
  }
  _tile_loadconfig(&config);
  for (int64_t g0 = u0; g0 < u1; g0 += kGroupBlocks) {
    const int64_t g1 = std::min(g0 + kGroupBlocks, u1);
    for (int64_t s0 = 0; s0 < steps; s0 += block_steps) {
      const int64_t count = std::min(block_steps, steps - s0);
      const bool prefetch = row_tiles > 1 && block_steps <= kPrefetchMaxSteps;
      NextPanels next(w, g0, g1, s0, steps, block_steps, u1, (row_tiles + 1) / 2 * (g1 - g0));
      NextPanels* const next_panels = prefetch ? &next : nullptr;
      for (int64_t r = 0; r < row_tiles; r += 2) {
        const uint16_t* a0 = a + (r * steps + s0) * kTileElems;
        const uint16_t* a1 = a0 + steps * kTileElems;
        for (int64_t g = g0; g < g1; ++g) {
          if (prefetch) next.begin(r / 2 * (g1 - g0) + (g - g0));
          const uint16_t* b0 = w.b16.data() + 2 * g * pstride + 2 * s0 * kTileElems;
          float* tile0 = acc + (r * 2 * kGroupBlocks + 2 * (g - g0)) * kAccElems;
          float* tile1 = tile0 + 2 * kGroupBlocks * kAccElems;
          float* const c[4] = {tile0, tile0 + kAccElems, tile1, tile1 + kAccElems};
          if (r + 1 < row_tiles) {
            tile_block<2, false>(a0, a1, b0, b0 + kTileElems, count, s0 == 0, c, next_panels);
          } else if (row_tiles == 1) {
            tile_block<1, true>(a0, a1, b0, b0 + kTileElems, count, s0 == 0, c, nullptr);
          } else {
            tile_block<1, false>(a0, a1, b0, b0 + kTileElems, count, s0 == 0, c, next_panels);
          }
        }
      }
    }
    write_rows(acc, m, w.n, g0, g1, y, accumulate);
  }
  _tile_release();
}

// The activation tiles of a product, in a buffer of the calling thread (slot: one per product of a
// group).
const uint16_t* activation_tiles(const PackedWeights& w, const float* x, int64_t m, size_t slot) {
  thread_local std::vector<AlignedBuffer<uint16_t>> buffers;
  if (buffers.size() <= slot) buffers.resize(slot + 1);
  const size_t need = static_cast<size_t>((m + kPanel - 1) / kPanel * kPanel * w.k_padded());
  if (buffers[slot].size() < need) buffers[slot].resize(need);
  pack_rows(x, m, w.k, w.k_padded(), buffers[slot].data());
  return buffers[slot].data();
}

}  // namespace

void refuse_without_amx(std::string_view what) {
  fail("{}: the AMX matmul backend needs a CPU with AMX-BF16 and AVX512-BF16 that the OS lets this process use "
       "(Intel Xeon from Sapphire Rapids on); this CPU has none: use --matmul own (the default)",
       what);
}

PackedWeights pack_f32(const float* w, int64_t n, int64_t k) { return pack(w, n, k); }
PackedWeights pack_bf16(const uint16_t* w, int64_t n, int64_t k) { return pack(w, n, k); }

void gemm(const PackedWeights& w, const float* x, int64_t m, float* y, bool accumulate) {
  if (m <= 0 || w.n == 0) return;
  require_amx("AMX matmul");
  if (w.k == 0) {
    if (!accumulate) std::fill_n(y, m * w.n, 0.0f);
    return;
  }
  const uint16_t* a = activation_tiles(w, x, m, 0);
  const bool decode = m <= kPanel;
  for_each_panel_range(m, w.n, w.k, w.panels(), 1, 0, w.bytes(), decode, 1,
                       [&](int64_t u0, int64_t u1, int) { run_blocks(w, a, m, y, accumulate, u0, u1); });
}

void gemm_group(const GemmTask* tasks, size_t count) {
  if (count == 0) return;
  require_amx("AMX matmul");
  std::vector<const uint16_t*> a(count, nullptr);
  for (size_t i = 0; i < count; ++i) {
    const GemmTask& t = tasks[i];
    if (t.m <= 0 || t.w->n == 0) continue;
    if (t.w->k == 0) {
      std::fill_n(t.y, t.m * t.w->n, 0.0f);
      continue;
    }
    // Products that read the same input (a layer's q, k and v projections) share its tiles.
    for (size_t j = 0; j < i && a[i] == nullptr; ++j) {
      if (a[j] != nullptr && tasks[j].x == t.x && tasks[j].m == t.m && tasks[j].w->k == t.w->k) a[i] = a[j];
    }
    if (a[i] == nullptr) a[i] = activation_tiles(*t.w, t.x, t.m, i);
  }
  for_each_task_share(tasks, count, static_cast<int>(kPanel), 1, kEvenStreams, [&](size_t i, int64_t u0, int64_t u1) {
    if (a[i] != nullptr) run_blocks(*tasks[i].w, a[i], tasks[i].m, tasks[i].y, false, u0, u1);
  });
}

}  // namespace shardlm::amx
