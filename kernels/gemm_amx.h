// Internal: the bf16 GEMM on Intel AMX tiles (the kAmx backend of Linear), for CPUs where
// has_amx_bf16() holds. One path for every batch size: a decode streams the weights once as the own
// GEMV does, a prefill chunk runs at tile-multiply speed.
//
// Packed weight layout: W [n, k] in panels of kPanel = 16 output columns, an even number of them
// (zero panels past n), k padded with zeros to a multiple of kStep = 32. A tile of panel p and step s
// (k in [32s, 32s + 32)) is 16 rows of 64 bytes, row r = (w[c, 32s + 2r], w[c, 32s + 2r + 1]) for
// the panel's 16 columns c in order: the operand layout of tdpbf16ps, one contiguous 1 KiB. The
// panels come in blocks of two (32 columns, the kernel's width), a block's tiles in step order with
// its two panels' tiles of a step side by side: a block is one sequential run of 2 x k_padded / 32
// tiles, and the blocks follow each other.
//
// Arithmetic: x is rounded to bf16 (nearest even); each output starts from zero and is accumulated
// in f32 by one tdpbf16ps per 32 k, in ascending k, then written to y (added to y when
// accumulating). The hardware sums the 32 products of a step in its own order (not a chain of
// fused multiply-adds), so results differ from the own kernel's in the last bits, and the bf16
// rounding of x is the oneDNN bf16 path's; they do not depend on the batch size, a row's position in
// the batch or the thread count (every row of a tile is computed alone, by the same sequence of
// tile operations).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "common/aligned_buffer.h"
#include "kernels/cpu_features.h"
#include "kernels/gemm_task.h"

namespace shardlm::amx {

inline constexpr int64_t kPanel = 16;  // output columns of a tile
inline constexpr int64_t kStep = 32;   // k of one tile multiply
inline constexpr int64_t kTileElems = kPanel * kStep;  // bf16 elements of a 16 x 32 operand tile (1 KiB)

// The tile configuration (palette 1) of every AMX loop here: tiles 0-7 of 16 rows x 64 bytes (32
// bf16 operands, or 16 f32 accumulators), for _tile_loadconfig.
struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {64, 64, 64, 64, 64, 64, 64, 64};
  uint8_t rows[16] = {16, 16, 16, 16, 16, 16, 16, 16};
};

struct PackedWeights {
  int64_t n = 0;
  int64_t k = 0;
  AlignedBuffer<uint16_t> b16;  // panels() blocks of 2 * panel_stride() elements

  int64_t k_padded() const { return (k + kStep - 1) / kStep * kStep; }
  // Units of work: blocks of two panels (32 output columns), the width of the kernel's tile.
  int64_t panels() const { return (n + 2 * kPanel - 1) / (2 * kPanel); }
  int64_t panel_stride() const { return k_padded() * kPanel; }
  size_t bytes() const { return b16.size() * sizeof(uint16_t); }
  // Where W[r, kk] is stored in b16 (the layout above).
  size_t index(int64_t r, int64_t kk) const {
    const int64_t block = r / (2 * kPanel), panel = r / kPanel % 2, step = kk / kStep;
    return static_cast<size_t>(block * 2 * panel_stride() + (2 * step + panel) * kTileElems +
                               (kk % kStep / 2) * 2 * kPanel + (r % kPanel) * 2 + (kk & 1));
  }
  // W[r, kk] as stored (bf16 bits).
  uint16_t at(int64_t r, int64_t kk) const { return b16[index(r, kk)]; }
};

// Fails naming `what` (the product or layer), as a CPU without AMX must hear it.
[[noreturn]] void refuse_without_amx(std::string_view what);
// Fails where has_amx_bf16() does not hold, naming the product or layer `what` formats to (formatted
// only then: Linear names every bf16 matrix it loads with --matmul amx).
template <class... Args>
void require_amx(fmt::format_string<Args...> what, Args&&... args) {
  if (!has_amx_bf16()) refuse_without_amx(fmt::format(what, std::forward<Args>(args)...));
}

// Pack W (row-major [n, k]): f32 values are rounded to bf16, bf16 bit patterns kept.
PackedWeights pack_f32(const float* w, int64_t n, int64_t k);
PackedWeights pack_bf16(const uint16_t* w, int64_t n, int64_t k);

// y[m, n] (+)= x[m, k] · Wᵀ on the AMX tiles, multi-threaded over blocks of 32 columns (OpenMP; a
// decode, m <= 16, hands them out with ShareScheduler). Fails where has_amx_bf16() does not hold.
void gemm(const PackedWeights& w, const float* x, int64_t m, float* y, bool accumulate);

// Several independent products y = x · Wᵀ in one parallel region (see gemm_own.h's gemm_group);
// each result equals gemm() of its task alone, bit for bit.
using GemmTask = GemmTaskOf<PackedWeights>;
void gemm_group(const GemmTask* tasks, size_t count);

}  // namespace shardlm::amx
