// Attention over blocks of cached keys/values, returning a partial result plus its log-sum-exp so
// that results over disjoint key sets merge exactly (flash-decoding). Grouped-query: each query head
// reads the KV head kv_head_of_q[h]. Key j is visible to query i iff 0 <= pos_q[i] - pos_k[j] and
// (window == 0 or pos_q[i] - pos_k[j] < window). Scores are scale * q·k (Gemma 4: scale 1.0).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace shardlm {

// How cached keys and values are stored: f32, or bf16 (half the bytes; each value rounded to
// nearest even when written, widened exactly when read, the arithmetic f32 either way).
enum class KvDtype { kF32, kBf16 };

size_t kv_dtype_bytes(KvDtype dtype);
const char* kv_dtype_name(KvDtype dtype);  // "f32" / "bf16"
KvDtype parse_kv_dtype(std::string_view name);  // throws Error naming the accepted values

// A block of consecutive cached positions. k and v are [count, n_kv_heads, head_dim] row-major
// (v may equal k's layout but is a separate array) of `dtype` values (float or uint16_t bf16).
// All blocks of one attention call have the same dtype.
struct KvBlockView {
  const void* k = nullptr;
  const void* v = nullptr;
  int32_t first_position = 0;
  int32_t count = 0;
  KvDtype dtype = KvDtype::kF32;
};

struct AttentionShape {
  int32_t n_q_heads = 0;
  int32_t n_kv_heads = 0;
  int32_t head_dim = 0;
  const int32_t* kv_head_of_q = nullptr;  // n_q_heads entries, each < n_kv_heads
};

// q: [n_q, n_q_heads, head_dim]; q_positions: n_q entries.
// out: [n_q, n_q_heads, head_dim], normalised over the visible keys of these blocks (0 if none);
// lse: [n_q, n_q_heads], log-sum-exp of the visible scores (-inf if none).
void attention_partial(const float* q, int64_t n_q, const int32_t* q_positions, const AttentionShape& shape,
                       const KvBlockView* blocks, int64_t n_blocks, int32_t window, float scale, float* out,
                       float* lse);
void attention_partial_ref(const float* q, int64_t n_q, const int32_t* q_positions, const AttentionShape& shape,
                           const KvBlockView* blocks, int64_t n_blocks, int32_t window, float scale, float* out,
                           float* lse);

// Merges partial results in place: (acc_out, acc_lse) <- merge((acc_out, acc_lse), (out, lse)).
// rows = n_q * n_q_heads vectors of head_dim.
void attention_merge(float* acc_out, float* acc_lse, const float* out, const float* lse, int64_t rows,
                     int64_t head_dim);

}  // namespace shardlm
