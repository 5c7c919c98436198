// The quantised GEMM's batch rows on AMX int8 tiles (tdpbssd: signed bytes times signed bytes into
// int32), for CPUs with AMX-INT8 at the AVX-512 level. Each product is one block of 32 k: a 16 x
// 32-byte tile of activations times the block's 8 x 64-byte tile of weights, so that the int32 block
// sums are exactly the micro-kernels' (qgemm.h), and from there the same f32 operations in the same
// order: the results are the same bit for bit. The weights of the panels of one chunk are written
// as signed weight tiles (q: int8 stored q + 128, q4 nibbles q + 8): with several row tiles all
// panels' first, into a buffer of the thread that every row tile reads; with one, each panel's just
// before its products, into a buffer that stays in L1. A row tile takes a panel's chunk in two passes: the
// products, each block's sums stored from its tile, and then the f32 steps over the stored sums; the
// products of the next panel run before the f32 steps of this one, so that those read sums stored
// well before.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>

#include "kernels/gemm_amx.h"
#include "kernels/qgemm.h"

#define SHARDLM_AMX_INT8 \
  __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))

namespace shardlm::qgemm {
namespace {

// Tiles: 0-3 block sums (`rows` rows x 16 int32, in turn), 4 the activations (`rows` rows x 32
// bytes), 5 the weights (8 rows of 4 k x 16 columns).
amx::TileConfig tile_config(int rows) {
  amx::TileConfig c;
  for (int t = 0; t < 8; ++t) {
    c.colsb[t] = 0;
    c.rows[t] = 0;
  }
  for (int t = 0; t < 4; ++t) {
    c.colsb[t] = 64;
    c.rows[t] = static_cast<uint8_t>(rows);
  }
  c.colsb[4] = kBlock;
  c.rows[4] = static_cast<uint8_t>(rows);
  c.colsb[5] = 64;
  c.rows[5] = kBlock / 4;
  return c;
}

// Bytes of one block's weight tile (8 rows x 64 bytes) and of a block's sums (16 x 16 int32).
constexpr int64_t kBlockTileBytes = 512;
constexpr int64_t kSumInts = 256;

// Block b of a panel as a tile of signed weights. int8: the stored bytes (q + 128) less 128, in
// the same order. q4: 64-byte pair h of the block's data holds rows 2h (low nibbles, k = 8h..8h+3)
// and 2h + 1 (high nibbles, k = 8h+4..8h+7), each nibble q + 8.
template <bool kInt8>
SHARDLM_AMX_INT8 inline void signed_block(const uint8_t* panel, int64_t b, int8_t* tile) {
  if constexpr (kInt8) {
    const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
    const uint8_t* data = panel + int8_block_offset(b);
#pragma GCC unroll 8
    for (int g = 0; g < 8; ++g) {
      _mm512_store_si512(tile + g * 64, _mm512_xor_si512(_mm512_load_si512(data + g * 64), bias));
    }
  } else {
    const __m512i low4 = _mm512_set1_epi8(0x0F), eight = _mm512_set1_epi8(8);
    const uint8_t* data = panel + q4_data_offset(b);
#pragma GCC unroll 4
    for (int h = 0; h < 4; ++h) {
      const __m512i raw = _mm512_load_si512(data + h * 64);
      _mm512_store_si512(tile + (2 * h) * 64, _mm512_sub_epi8(_mm512_and_si512(raw, low4), eight));
      _mm512_store_si512(tile + (2 * h + 1) * 64,
                         _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(raw, 4), low4), eight));
    }
  }
}

// One block's product into sum tile T (a literal: the tile intrinsics name their tiles in the
// instruction) and its sums stored at `out`.
#define SHARDLM_BLOCK_PRODUCT(T, xq, kp, tile, out) \
  do {                                              \
    _tile_zero(T);                                  \
    _tile_loadd(4, (xq), (kp));                     \
    _tile_loadd(5, (tile), 64);                     \
    _tile_dpbssd(T, 4, 5);                          \
    _tile_stored(T, (out), 64);                     \
  } while (0)

// The products of rows [i0, i0 + 16) x one panel over the blocks [c0, c1) of a chunk (tiles: the
// panel's weight tiles of the chunk, 512 bytes apart): block b's sums at sums + (b - c0) * 256.
SHARDLM_AMX_INT8 inline void chunk_products(const int8_t* xq, int64_t kp, int64_t c0, int64_t c1, const int8_t* tiles,
                                            int32_t* sums) {
  for (int64_t b = c0; b < c1; ++b) {
    const int8_t* x = xq + b * kBlock;
    const int8_t* t = tiles + (b - c0) * kBlockTileBytes;
    int32_t* out = sums + (b - c0) * kSumInts;
    switch ((b - c0) & 3) {
      case 0: SHARDLM_BLOCK_PRODUCT(0, x, kp, t, out); break;
      case 1: SHARDLM_BLOCK_PRODUCT(1, x, kp, t, out); break;
      case 2: SHARDLM_BLOCK_PRODUCT(2, x, kp, t, out); break;
      default: SHARDLM_BLOCK_PRODUCT(3, x, kp, t, out); break;
    }
  }
}

// The f32 steps of rows [i0, i0 + valid_rows) x panel g over the chunk [c0, c1), from the stored
// sums: per block f = fma(s, dx, f) (int8) or fma(s * d, dx, f) (q4), then t = fma(f, d_row, t)
// (int8) or t + f (q4) with y holding t. dx: the rows' activation scales of the chunk, block by block
// (16 apart), so that every one is at a fixed offset from one pointer. All 16 rows are computed (a
// tile of fewer rows leaves the others' sums as they were, with dx 0); only the valid ones written.
template <bool kInt8>
SHARDLM_AMX_INT8 void chunk_finish(const PackedWeights& w, const float* dx, const int32_t* sums, float* y, int64_t i0,
                                   int valid_rows, int64_t g, int64_t c0, int64_t c1) {
  const int64_t n = w.n;
  const uint8_t* panel = w.data.data() + g * w.panel_stride();
  __m512 f[kTileRows];
#pragma GCC unroll 16
  for (int r = 0; r < kTileRows; ++r) f[r] = _mm512_setzero_ps();
  for (int64_t b = c0; b < c1; ++b) {
    const int32_t* s = sums + (b - c0) * kSumInts;
    [[maybe_unused]] __m512 d;
    if constexpr (!kInt8) d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel + q4_scale_offset(b))));
#pragma GCC unroll 16
    for (int r = 0; r < kTileRows; ++r) {
      const __m512 sf = _mm512_cvtepi32_ps(_mm512_load_si512(s + r * 16));
      const __m512 dxr = _mm512_set1_ps(dx[(b - c0) * kTileRows + r]);
      if constexpr (kInt8) {
        f[r] = _mm512_fmadd_ps(sf, dxr, f[r]);
      } else {
        f[r] = _mm512_fmadd_ps(_mm512_mul_ps(sf, d), dxr, f[r]);
      }
    }
  }
  const int valid = static_cast<int>(std::min<int64_t>(kPanel, n - g * kPanel));
  const __mmask16 mask = static_cast<__mmask16>(valid >= 16 ? 0xFFFF : (1u << valid) - 1u);
  [[maybe_unused]] __m512 row_scale;
  if constexpr (kInt8) row_scale = _mm512_load_ps(reinterpret_cast<const float*>(panel));
#pragma GCC unroll 16
  for (int r = 0; r < kTileRows; ++r) {
    if (r >= valid_rows) break;
    float* yr = y + (i0 + r) * n + g * kPanel;
    const __m512 t = _mm512_maskz_loadu_ps(mask, yr);
    __m512 out;
    if constexpr (kInt8) {
      out = _mm512_fmadd_ps(f[r], row_scale, t);
    } else {
      out = _mm512_add_ps(t, f[r]);
    }
    _mm512_mask_storeu_ps(yr, mask, out);
  }
}

template <bool kInt8>
SHARDLM_AMX_INT8 void run(const PackedWeights& w, const QuantizedRows& x, float* y, int64_t rows, int64_t p0, int64_t p1,
                          int64_t c0, int64_t c1) {
  const int64_t nb = w.blocks(), stride = w.panel_stride(), kp = x.kp;
  constexpr int64_t kPanelChunkBytes = kChunkBlocks * kBlockTileBytes;
  // The panels' weight tiles of the chunk, written once for every row tile.
  thread_local AlignedBuffer<int8_t> tiles;
  if (rows > kTileRows && tiles.size() < static_cast<size_t>((p1 - p0) * kPanelChunkBytes)) {
    tiles.resize(static_cast<size_t>((p1 - p0) * kPanelChunkBytes));
  }
  // One row tile: each panel's tiles written just before its products, into one of two buffers that
  // stay in L1; several: all panels' first, for every row tile.
  const bool one_tile = rows <= kTileRows;
  const auto write_tiles = [&](int64_t g, int8_t* out) {
    const uint8_t* panel = w.data.data() + g * stride;
    for (int64_t b = c0; b < c1; ++b) signed_block<kInt8>(panel, b, out + (b - c0) * kBlockTileBytes);
  };
  alignas(64) int8_t near[2][kPanelChunkBytes];
  const auto panel_tiles = [&](int64_t g) -> const int8_t* {
    if (!one_tile) return tiles.data() + (g - p0) * kPanelChunkBytes;
    write_tiles(g, near[(g - p0) & 1]);
    return near[(g - p0) & 1];
  };
  if (!one_tile) {
    for (int64_t g = p0; g < p1; ++g) write_tiles(g, tiles.data() + (g - p0) * kPanelChunkBytes);
  }
  // The sums of two panels' chunks: one being finished while the next one's products run. (Zero
  // from the thread's start, and only ever written with tiles' sums: the rows a tile of fewer rows
  // leaves, computed and not written, are finite.)
  alignas(64) thread_local int32_t sums[2][kChunkBlocks * kSumInts] = {};
  alignas(64) float dx[kChunkBlocks * kTileRows];
  // Whole tiles of 16 rows, then the rows left over in one tile of fewer (kTileRowsMin or more).
  static const amx::TileConfig whole = tile_config(kTileRows);
  const amx::TileConfig last = tile_config(static_cast<int>(rows % kTileRows));
  int configured = rows >= kTileRows ? kTileRows : static_cast<int>(rows);
  _tile_loadconfig(configured == kTileRows ? &whole : &last);
  for (int64_t i0 = 0; i0 < rows; i0 += kTileRows) {
    const int tile_rows = static_cast<int>(std::min<int64_t>(kTileRows, rows - i0));
    if (tile_rows != configured) {
      configured = tile_rows;
      _tile_loadconfig(configured == kTileRows ? &whole : &last);
    }
    const int8_t* xq = x.xq.data() + i0 * kp;
    for (int64_t b = c0; b < c1; ++b) {
      for (int64_t r = 0; r < kTileRows; ++r) {
        dx[(b - c0) * kTileRows + r] = r < tile_rows ? x.dx.data()[(i0 + r) * nb + b] : 0.0f;
      }
    }
    chunk_products(xq, kp, c0, c1, panel_tiles(p0), sums[0]);
    for (int64_t g = p0; g < p1; ++g) {
      if (g + 1 < p1) chunk_products(xq, kp, c0, c1, panel_tiles(g + 1), sums[(g + 1 - p0) & 1]);
      chunk_finish<kInt8>(w, dx, sums[(g - p0) & 1], y, i0, tile_rows, g, c0, c1);
    }
  }
  _tile_release();
}

}  // namespace

void tile_rows_amx(const PackedWeights& w, const QuantizedRows& x, float* y, int64_t rows, int64_t p0, int64_t p1,
                   int64_t c0, int64_t c1) {
  if (rows <= 0 || p0 >= p1 || c0 >= c1) return;
  if (w.format == Format::kInt8) {
    run<true>(w, x, y, rows, p0, p1, c0, c1);
  } else {
    run<false>(w, x, y, rows, p0, p1, c0, c1);
  }
}

}  // namespace shardlm::qgemm
