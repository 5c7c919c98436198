// Internal: the project's own f32-activation GEMM/GEMV (the kOwn backend of Linear).
//
// Packed weight layout (independent of the ISA, so a packed matrix works on every path): W [n, k]
// is cut into panels of kPanel = 16 output columns; panel p holds W[16p .. 16p+15, 0..k-1] as k
// rows of 16 (column-interleaved), zero-padded past n, at p * panel_stride(). Element type f32 or
// bf16 (the upper half of an f32). Row order (panel_row): k comes in chunks of L = chunk_len(k)
// (kKChunk = 256 when that gives 1, 2, 3 or an even number of chunks; otherwise an even length that
// splits k into 2, 3 or an even number of chunks where one exists, e.g. 704 = 2 x 352); the complete
// chunks are grouped in pairs (2q, 2q + 1), except that an odd number (>= 3) of them ends with a
// group of three. A group is stored interleaved two rows at a time (rows 0-1 of its first chunk,
// rows 0-1 of its second, ..., then rows 2-3 of each, ...), so that a GEMV runs the group's
// independent chunk sums side by side while reading one sequential stream (one fma chain alone is
// bound by the fma latency, below the memory bandwidth); a chunk left alone (an incomplete last one,
// or one complete chunk) is stored in plain order. (A panel read by two different loops — a pair and
// then a chunk alone, pairs and then a group of three, or a group with a shorter last chunk — was
// measured slower, up to 15%: the change of loop defeats the hardware prefetchers; hence chunk
// lengths that divide k into pairs.)
//
// Arithmetic (identical on every ISA, so results are bit-exact across paths, batch sizes, row
// positions in the batch and thread counts): for each output y[i, c]
//     t = accumulate ? y[i, c] : 0
//     for each k chunk [Lq, Lq + L) ∩ [0, k), in order:
//         s = 0;  for kk in chunk, ascending: s = fma(x[i, kk], w[c, kk], s)
//         t = t + s
//     y[i, c] = t
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "common/aligned_buffer.h"
#include "kernels/cpu_features.h"
#include "kernels/gemm_task.h"

namespace shardlm::gemm {

inline constexpr int64_t kPanel = 16;
inline constexpr int64_t kKChunk = 256;
inline constexpr int64_t kPanelPad = 32;  // elements
inline constexpr int kMaxMr = 8;
inline constexpr int kMaxNr = 8;

// The length of the k chunks of a matrix with k columns: kKChunk when that makes 1, 2, 3 or an even
// number of complete chunks (or k < 256); otherwise the even length in [128, 512] that splits k into
// the fewest chunks, their number 2, 3 or even, so that a panel is read by one loop (704 = 2 x 352,
// 2816 = 8 x 352, 5376 = 12 x 448); kKChunk again when there is none (a last incomplete chunk, or a
// pair and a group of three, then stay).
inline int64_t chunk_len(int64_t k) {
  if (k < 2 * 128) return kKChunk;
  if (k % kKChunk == 0 && (k / kKChunk <= 3 || k / kKChunk % 2 == 0)) return kKChunk;
  for (int64_t c = std::max<int64_t>(2, (k + 511) / 512); k / c >= 128; ++c) {
    if ((c <= 3 || c % 2 == 0) && k % c == 0 && (k / c) % 2 == 0) return k / c;
  }
  return kKChunk;
}

// The group of chunks that holds the chunk starting at k index c0 (a multiple of chunk_len(k)) in a
// matrix with k columns (see above): `members` complete chunks from k index `begin`, stored
// interleaved, or one chunk in plain order (members = 1).
struct ChunkGroup {
  int64_t begin = 0;
  int members = 1;
};
inline ChunkGroup chunk_group(int64_t c0, int64_t k, int64_t len) {
  const int64_t complete = k / len;
  const int64_t q = c0 / len;
  if (q < complete) {
    if (complete % 2 == 1 && complete >= 3 && q >= complete - 3) return {(complete - 3) * len, 3};
    if (q / 2 * 2 + 1 < complete) return {q / 2 * 2 * len, 2};
  }
  return {c0, 1};
}

// The rows of the chunk that starts at k index c0 (a multiple of len = chunk_len(k)) in a panel of a
// matrix with k columns: k index c0 + j is at row(j).
struct ChunkRows {
  int64_t first = 0;
  int64_t step = 2;  // rows per two k: 2 in plain order, 2 x the chunks of an interleaved group
  int64_t row(int64_t j) const { return first + (j >> 1) * step + (j & 1); }
};
inline ChunkRows chunk_rows(int64_t c0, int64_t k, int64_t len) {
  const ChunkGroup g = chunk_group(c0, k, len);
  return {g.begin + 2 * ((c0 - g.begin) / len), 2 * g.members};
}
// The row of k index kk.
inline int64_t panel_row(int64_t kk, int64_t k) {
  const int64_t len = chunk_len(k);
  const int64_t c0 = kk / len * len;
  return chunk_rows(c0, k, len).row(kk - c0);
}
// fn(kk, row) for every k index of a matrix with k columns, in order.
template <typename Fn>
void for_each_k_row(int64_t k, Fn&& fn) {
  const int64_t len = chunk_len(k);
  for (int64_t c0 = 0; c0 < k; c0 += len) {
    const ChunkRows rows = chunk_rows(c0, k, len);
    const int64_t end = std::min(len, k - c0);
    for (int64_t j = 0; j < end; ++j) fn(c0 + j, rows.row(j));
  }
}

struct PackedWeights {
  int64_t n = 0;
  int64_t k = 0;
  bool bf16 = false;
  AlignedBuffer<float> f32;      // n_panels * panel_stride() when !bf16
  AlignedBuffer<uint16_t> b16;   // n_panels * panel_stride() when bf16

  int64_t panels() const { return (n + kPanel - 1) / kPanel; }
  // Elements between consecutive panels: k * 16 plus 64 bytes (bf16) / 128 bytes (f32) of padding, so
  // that the panels of a tile do not all map to the same L1 sets (k * 16 elements is often a
  // multiple of 4 KiB).
  int64_t panel_stride() const { return k * kPanel + kPanelPad; }
  const void* data() const { return bf16 ? static_cast<const void*>(b16.data()) : static_cast<const void*>(f32.data()); }
  size_t bytes() const { return bf16 ? b16.size() * sizeof(uint16_t) : f32.size() * sizeof(float); }
};

PackedWeights pack_f32(const float* w, int64_t n, int64_t k, bool to_bf16);
PackedWeights pack_bf16(const uint16_t* w, int64_t n, int64_t k, bool to_f32);

// A micro-kernel updates an mr x (nr panels) tile of y over the k chunks [k0, k1) (k0 a multiple of
// chunk_len(k)) of a matrix with k columns: x points at row 0 of the tile (row stride ldx), w at the
// tile's first panel (panels panel_stride elements apart), y at the tile's (row 0, column 0) (row
// stride ldy). Only the first valid_last columns of the last panel are written.
using MicroKernel = void (*)(const float* x, int64_t ldx, const void* w, int64_t panel_stride, int64_t k, int64_t k0,
                             int64_t k1, float* y, int64_t ldy, int valid_last);

struct MicroKernelSet {
  int mr_max = 1;
  int nr_max[kMaxMr + 1] = {};                      // widest tile for each row count
  int gemv_nr = 0;                                  // panels per tile of a GEMV (0: nr_max[1])
  // Sequential streams a GEMV (m = 1) reads side by side, for cores that read several streams faster
  // than one (Zen 3): S > 1 schedules it in units of S panels a fraction of the matrix apart
  // (schedule_units in gemm_task.h), each the tile [1][S] with their distance as panel stride.
  int gemv_streams = 1;
  MicroKernel f32[kMaxMr + 1][kMaxNr + 1] = {};     // [mr][nr]
  MicroKernel bf16[kMaxMr + 1][kMaxNr + 1] = {};
};

const MicroKernelSet& scalar_kernels();
const MicroKernelSet& avx2_kernels();
const MicroKernelSet& avx512_kernels();

// y[m, n] (+)= x[m, k] · Wᵀ with the given ISA, multi-threaded over panels (OpenMP; a decode hands
// the panels out with ShareScheduler, see gemm_task.h).
void gemm(const PackedWeights& w, const float* x, int64_t m, float* y, bool accumulate, Isa isa);

// Several independent products y = x · Wᵀ (e.g. the experts a MoE layer routes its tokens to) in one
// parallel region, with no barrier in between (a decode schedules the products' panels one after
// the other, see gemm_task.h). Each result equals gemm() of its task alone, bit for bit.
using GemmTask = GemmTaskOf<PackedWeights>;
void gemm_group(const GemmTask* tasks, size_t count, Isa isa);

}  // namespace shardlm::gemm
