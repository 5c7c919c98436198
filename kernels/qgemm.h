// Internal: the own GEMM/GEMV for quantised weights (the int8 and q4 formats of Linear), with the
// activations quantised on the fly to int8 and integer dot products (AVX-512 VNNI vpdpbusd, AVX2
// vpmaddubsw, scalar reference).
//
// Weight formats (W [n, k], k zero-padded to kp = a multiple of 32; blocks of 32 along k):
//  - int8: one f32 scale per output row (d = max|w| / 127), q = round(w / d) in [-127, 127].
//  - q4:   one f16 scale per row and block of 32 (d = w_m / -8 where w_m is the block's value of
//          largest magnitude), q = round(w / d) in [-8, 7].
// Activations: each row of x in blocks of 32, one f32 scale per block (dx = max|x| / 127),
// xq = round(x / dx) in [-127, 127] (round half to even), and xs = the sum of the block's xq.
//
// Packed layout: panels of 16 output rows (as in gemm_own.h), each panel_stride() bytes apart.
// In a panel, a block of 32 k is 8 groups of 4 k; a group is 64 bytes [16 columns][4 k].
//  - int8 panel: [16 f32 row scales][nb blocks x 512 bytes], bytes stored as q + 128.
//  - q4 panel:   the blocks in pairs of kQ4PairBytes = 576 bytes (9 cache lines), each [256 bytes of
//                block 2p's data][16 f16 scales of block 2p][16 of block 2p + 1][256 bytes of block
//                2p + 1's data], so that a panel is one strictly sequential stream (what the hardware
//                prefetchers follow best) and every 64-byte load of data is within one cache line;
//                byte (c * 4 + j) of 64-byte pair h of a block's data holds q + 8 of k = 8h + j in
//                its low nibble and of k = 8h + 4 + j in its high nibble (column c).
//
// Arithmetic (exact integers, then the same f32 operations on every ISA, so results are bit-exact
// across ISAs, batch sizes, row positions and thread counts): for output y[i, c]
//     t = accumulate ? y[i, c] : 0
//     for each chunk of 8 blocks (256 k), in order:
//         f = 0
//         for each block b of the chunk, in order:
//             s = sum over the block of xq[i, kk] * q[c, kk]          (int32, exact)
//             int8: f = fma(float(s), dx[i, b], f)
//             q4:   f = fma(float(s) * d[c, b], dx[i, b], f)
//         int8: t = fma(f, d[c], t)      q4: t = t + f
//     y[i, c] = t
#pragma once

#include <cstdint>
#include <functional>
#include <utility>

#include <xmmintrin.h>

#include "common/aligned_buffer.h"
#include "kernels/cpu_features.h"
#include "kernels/gemm_task.h"

namespace shardlm::qgemm {

enum class Format { kInt8, kQ4 };

inline constexpr int64_t kPanel = 16;
inline constexpr int64_t kBlock = 32;
inline constexpr int64_t kChunkBlocks = 8;  // 256 k per chunk
inline constexpr int kMaxMr = 8;
inline constexpr int kMaxNr = 8;

struct PackedWeights {
  Format format = Format::kInt8;
  int64_t n = 0;
  int64_t k = 0;
  AlignedBuffer<uint8_t> data;

  int64_t kp() const { return (k + kBlock - 1) / kBlock * kBlock; }
  int64_t blocks() const { return kp() / kBlock; }
  int64_t panels() const { return (n + kPanel - 1) / kPanel; }
  int64_t block_bytes() const { return format == Format::kInt8 ? 512 : 256; }
  // Bytes between consecutive panels: the panel plus 64 bytes, so that the panels of a tile do not
  // all map to the same L1 sets.
  int64_t panel_stride() const {
    const int64_t nb = blocks();
    const int64_t body = format == Format::kInt8 ? 64 + nb * 512 : nb / 2 * 576 + nb % 2 * 320;
    return (body + 63) / 64 * 64 + 64;
  }
  size_t bytes() const { return data.size(); }
};

// Bytes of a pair of q4 blocks in a panel: 2 x 256 of data and 2 x 16 f16 scales.
inline constexpr int64_t kQ4PairBytes = 2 * (256 + 32);

// Offsets in a q4 panel: block b's 256 bytes of data (64-byte aligned) and its 16 f16 scales.
inline int64_t q4_data_offset(int64_t b) { return b / 2 * kQ4PairBytes + b % 2 * 320; }
inline int64_t q4_scale_offset(int64_t b) { return b / 2 * kQ4PairBytes + 256 + b % 2 * 32; }

// Where block b's data starts in an int8 panel (after the 64 bytes of row scales).
inline int64_t int8_block_offset(int64_t b) { return 64 + b * 512; }

// The kernels prefetch their weights in software, the q4 kernels kQ4PrefetchBlocks blocks (12
// pairs, 6.75 KiB) ahead in each panel and the AVX2 int8 kernel kInt8PrefetchBlocks (1.5 KiB) ahead,
// and in the last blocks of a tile the first blocks of the next tile's panels (on short panels, e.g.
// the 22 blocks of the 26B-A4B expert down matrix, a little beyond them: prefetches never fault).
// The hardware prefetchers alone lag behind a kernel whose arithmetic keeps fewer loads in flight
// than a plain read loop when it reads one stream (the AVX-512 int8 GEMV streams at the read
// bandwidth without). The AVX2 GEMV tiles without VNNI that read three streams side by side do not
// prefetch: there the hardware prefetchers keep up, and software prefetches only cost (see
// qgemm_avx2.cc). The AVX2 int8 distance was measured on Zen 3 (one stream, one thread, 31B and
// expert shapes): 12 blocks 0.68-0.73 of the read bandwidth, 6 0.71-0.77, 4 0.77-0.82, 3 0.80-0.84,
// 2 0.75; two threads 12 0.70-0.82, 3 0.81-0.89.
//
// The helpers below are always inlined: GCC 12's mod-ref analysis finds that a function which only
// prefetches reads and writes nothing, and deletes the calls to it.
inline constexpr int64_t kQ4PrefetchBlocks = 24;
inline constexpr int64_t kInt8PrefetchBlocks = 3;

// The cache lines of q4 block `block` of the panel at `panel`: its data and its pair's scales (5
// lines from its data on). (The AVX2 int8 kernel prefetches in a loop of its own: 8 prefetches in a
// row per block measured 5-8% slower there.)
// (prefetch_lines: the kLines cache lines from p on, into the cache level kHint names.)
template <int kLines, _mm_hint kHint>
[[gnu::always_inline]] inline void prefetch_lines(const void* p) {
#pragma GCC unroll 8
  for (int line = 0; line < kLines; ++line) _mm_prefetch(static_cast<const char*>(p) + line * 64, kHint);
}
[[gnu::always_inline]] inline void prefetch_q4_block(const uint8_t* panel, int64_t block) {
  prefetch_lines<5, _MM_HINT_T0>(panel + q4_data_offset(block));
}
template <int... J>
[[gnu::always_inline]] inline void prefetch_q4_panels(const uint8_t* base, int64_t panel_stride, int64_t block,
                                                      std::integer_sequence<int, J...>) {
  (prefetch_q4_block(base + J * panel_stride, block), ...);
}

// Quantises W (row-major [n, k]) into the format. Rows of all zeros get scale 0.
PackedWeights pack_f32(const float* w, int64_t n, int64_t k, Format format);
PackedWeights pack_bf16(const uint16_t* w, int64_t n, int64_t k, Format format);
// The same, reading row r (k values) through read_row(r, out) as it goes, so that the whole matrix is
// never held unquantised; read_row is called from several threads at once. row_max_abs (int8 only,
// n values): the magnitude each row's scale is taken from instead of the row's own largest, e.g. the
// largest over a whole row of which W holds a slice of columns (at least the slice's own).
PackedWeights pack_rows(int64_t n, int64_t k, Format format, const std::function<void(int64_t, float*)>& read_row,
                        const float* row_max_abs = nullptr);

// Row r of the dequantised weight matrix (k values), e.g. an embedding row of a tied LM head.
void dequantize_row(const PackedWeights& w, int64_t r, float* out);

// Quantised activations of m rows (see above). xq rows are kp bytes apart, dx / xs rows nb apart.
struct QuantizedRows {
  int64_t m = 0;
  int64_t kp = 0;
  AlignedBuffer<int8_t> xq;
  AlignedBuffer<float> dx;
  AlignedBuffer<int32_t> xs;
};
void quantize_rows(const float* x, int64_t m, int64_t k, int64_t kp, QuantizedRows& out, Isa isa = Isa::kScalar);
// One row of x (k values) into kp / 32 blocks: the quantised bytes q (kp), the scales dx and sums
// xs; false if a value is not finite. The AVX-512 and AVX2 ones give the same bytes as the scalar one.
bool quantize_row_scalar(const float* x, int64_t k, int64_t kp, int8_t* q, float* dx, int32_t* xs);
bool quantize_row_avx512(const float* x, int64_t k, int64_t kp, int8_t* q, float* dx, int32_t* xs);
bool quantize_row_avx2(const float* x, int64_t k, int64_t kp, int8_t* q, float* dx, int32_t* xs);

// A micro-kernel updates an mr x (nr panels) tile of y over the blocks [b0, b1) (b0 a multiple of
// kChunkBlocks): row r of the tile uses xq + r * kp, dx + r * nb, xs + r * nb; w points at the
// tile's first panel (panels panel_stride bytes apart), y at the tile's (row 0, column 0) (row
// stride ldy). Only the first valid_last columns of the last panel are written. next_w, when not
// null, is the first panel of the tile this thread streams next (a hint for prefetching only).
struct MicroArgs {
  const int8_t* xq;
  const float* dx;
  const int32_t* xs;
  int64_t kp;
  int64_t nb;
  const uint8_t* w;
  int64_t panel_stride;
  int64_t b0, b1;
  float* y;
  int64_t ldy;
  int valid_last;
  const uint8_t* next_w = nullptr;
};
using MicroKernel = void (*)(const MicroArgs& a);

// In a q4 tile of NR panels at block b: prefetches the block kQ4PrefetchBlocks ahead in each panel
// or, past the tile's last block, the matching block of the next tile's panels (when there is one).
template <int NR>
[[gnu::always_inline]] inline void prefetch_q4_ahead(const MicroArgs& a, int64_t b) {
  const int64_t block = b + kQ4PrefetchBlocks;
  if (block < a.b1) {
    prefetch_q4_panels(a.w, a.panel_stride, block, std::make_integer_sequence<int, NR>{});
  } else if (a.next_w != nullptr) {
    prefetch_q4_panels(a.next_w, a.panel_stride, block - a.b1, std::make_integer_sequence<int, NR>{});
  }
}

// Rows [0, rows) of y x panels [p0, p1), over the blocks [c0, c1) of one chunk, on AMX int8 tiles
// (qgemm_amx.cc), in tiles of kTileRows rows and the rows left over in one of fewer: the chunk's
// step of the arithmetic above, bit for bit (y holds t on entry and after).
void tile_rows_amx(const PackedWeights& w, const QuantizedRows& x, float* y, int64_t rows, int64_t p0, int64_t p1,
                   int64_t c0, int64_t c1);
using TileRowsKernel = void (*)(const PackedWeights& w, const QuantizedRows& x, float* y, int64_t rows, int64_t p0,
                                int64_t p1, int64_t c0, int64_t c1);
// Rows a tile of TileRowsKernel takes, and the fewest it is given in a tile: a tile costs about the
// same for any number of rows. Measured on a Xeon with AMX (31B 2 layers q4, sequences decoded
// together, two threads, against the micro-kernels alone): 8 rows 150-154 against 138-143 ms a step,
// 10 rows 157 against 157-158, 16 rows 168-172 against 207-214.
inline constexpr int64_t kTileRows = 16;
inline constexpr int64_t kTileRowsMin = 11;

struct MicroKernelSet {
  int mr_max = 1;
  int nr_max[kMaxMr + 1] = {};
  // Panels per tile of a GEMV (m = 1) of each format, when fewer than nr_max[1] keep more of the
  // weight stream in flight (0: nr_max[1]).
  int q4_gemv_nr = 0;
  int int8_gemv_nr = 0;
  // Sequential streams a GEMV (m = 1) of either format reads side by side, for cores that read
  // several streams faster than one (Zen 3; Intel server cores at the AVX-512 level): S > 1
  // schedules it in units of S panels a fraction of the matrix apart (schedule_units in
  // gemm_task.h), each the tile [1][S] with their distance as panel stride.
  int gemv_streams = 1;
  // Whether those streams are placed half a 4 KiB page apart rather than exactly a fraction of the
  // matrix (gemv_stream_distance in gemm_task.h; Intel server cores).
  bool place_gemv_streams = false;
  MicroKernel int8[kMaxMr + 1][kMaxNr + 1] = {};
  MicroKernel q4[kMaxMr + 1][kMaxNr + 1] = {};
  // A batch of more than mr_max rows takes its rows in tiles of kTileRows here where set, a last tile
  // of fewer where at least kTileRowsMin are left over (fewer stay with the micro-kernels).
  TileRowsKernel tile_rows = nullptr;
};

const MicroKernelSet& scalar_kernels();
const MicroKernelSet& avx2_kernels();
const MicroKernelSet& avx2_vnni_kernels();  // needs AVX-VNNI
// The kernel set the quantised GEMM uses at `level` (kernel_isa()): at AVX2 the AVX-VNNI one where
// the CPU has it, unless use_avx_vnni(false) was called (tests compare both); at AVX-512 the one
// with AMX int8 tiles for batches where the CPU has them (has_amx_int8), unless use_amx_int8(false)
// was called.
const MicroKernelSet& kernels_at(Isa level);
void use_avx_vnni(bool enabled);
void use_amx_int8(bool enabled);
const MicroKernelSet& avx512_kernels();      // needs AVX-512 VNNI
const MicroKernelSet& avx512_amx_kernels();  // needs AVX-512 VNNI and AMX-INT8

// The level the quantised kernels use at `isa`: AVX-512 only with VNNI, else AVX2.
Isa kernel_isa(Isa isa);

// y[m, n] (+)= x[m, k] · Wᵀ, multi-threaded over panels (OpenMP; a decode hands the panels out with
// ShareScheduler, see gemm_task.h).
void gemm(const PackedWeights& w, const float* x, int64_t m, float* y, bool accumulate, Isa isa);

// Several independent products y = x · Wᵀ in one parallel region (as gemm_own.h's gemm_group); each
// result equals gemm() of its task alone, bit for bit.
using GemmTask = GemmTaskOf<PackedWeights>;
void gemm_group(const GemmTask* tasks, size_t count, Isa isa);

}  // namespace shardlm::qgemm
