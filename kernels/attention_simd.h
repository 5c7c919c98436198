// Internal: the per-ISA attention "row tile" kernels (attention_impl.inl) and what they are given.
// A row is one (query, query head) pair; a tile is up to kAttnMaxRows rows that read the same KV
// head, key tile by key tile, so a prefill's keys and values come from the near caches for all but
// the first group of rows. Every row's arithmetic is independent of which other rows share its tile,
// so results do not depend on tiling, threads or how the keys are cut into blocks.
#pragma once

#include <cstdint>

#include "kernels/attention.h"

namespace shardlm::detail {

// Rows per tile, and per step of the score loop (kAttnScoreRows: the registers hold their sums).
// 16 rows (8 prefill queries of a KV head with two query heads each; P·V for four rows with the same
// keys at once) against 4 rows: prefill of 512 x 512 on Zen 3 (shardlm_bench_kernels --attention,
// alternated builds) 31.3-31.5 -> 40.4-40.7 GFLOP/s on one thread, 61.5-63.2 -> 78.9-80.4 on two.
// 64 against 16 (each key tile read from L3 or L2 once for four times the rows; two threads, a
// Xeon, AVX-512, alternated): 26B-A4B full-attention shape (head dim 512, 512 queries against 8192
// positions) 190-192 -> 221-232 GFLOP/s, sliding shape (512 against 1536) 163 -> 190-193, 512 x
// 512 at 32 heads 155-158 -> 167-168; 128 rows no better; at the AVX2 level the same within 3%.
inline constexpr int kAttnMaxRows = 64;
inline constexpr int kAttnScoreRows = 4;
// Keys per online-softmax step: one aligned run of kAttnKeyTile positions, from any blocks.
inline constexpr int64_t kAttnKeyTile = 64;

// floor(position / size): the aligned run of `size` positions a position belongs to (key tiles here,
// key chunks in attention.cc).
inline int64_t aligned_run(int64_t position, int64_t size) {
  return position >= 0 ? position / size : -((-position + size - 1) / size);
}

struct AttnRow {
  const float* q = nullptr;  // head_dim values
  float* out = nullptr;      // head_dim values
  float* lse = nullptr;
  int32_t position = 0;
};

struct AttnTileArgs {
  const KvBlockView* blocks = nullptr;
  int64_t n_blocks = 0;
  int64_t kv_stride = 0;  // values between consecutive positions in a block (n_kv_heads * head_dim)
  int64_t kv_offset = 0;  // the tile's KV head * head_dim
  int64_t head_dim = 0;
  int32_t window = 0;
  float scale = 1.0f;
};

// How many bytes of chunk partials attention_partial keeps at once before it runs a call's key
// chunks one after the other (64 MiB; tests set it to reach both ways, which give the same results).
void set_attention_partial_bytes(double bytes);

void attention_tile_scalar(const AttnTileArgs& args, const AttnRow* rows, int n_rows);
void attention_tile_avx2(const AttnTileArgs& args, const AttnRow* rows, int n_rows);
void attention_tile_avx512(const AttnTileArgs& args, const AttnRow* rows, int n_rows);
// The same over bf16 K/V (KvDtype::kBf16).
void attention_tile_scalar_bf16(const AttnTileArgs& args, const AttnRow* rows, int n_rows);
void attention_tile_avx2_bf16(const AttnTileArgs& args, const AttnRow* rows, int n_rows);
void attention_tile_avx512_bf16(const AttnTileArgs& args, const AttnRow* rows, int n_rows);

}  // namespace shardlm::detail
