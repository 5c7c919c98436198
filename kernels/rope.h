// Rotary position embedding in the half-split ("NeoX") layout: dimension j pairs with j + d/2.
// Frequencies are given per pair (inv_freq[j], j < d/2); a zero frequency leaves the pair unchanged,
// which is how Gemma 4's proportional partial RoPE is expressed.
#pragma once

#include <cstdint>
#include <vector>

namespace shardlm {

// inv_freq[j] = theta^(-2j / head_dim) for j < rotary_pairs, 0 for the rest (head_dim/2 entries).
std::vector<float> rope_inv_freq(int64_t head_dim, double theta, int64_t rotary_pairs);

// x: rows of n_heads * head_dim (row stride in floats); row r is at position positions[r].
void rope_apply(float* x, int64_t rows, int64_t row_stride, int64_t n_heads, int64_t head_dim,
                const int32_t* positions, const float* inv_freq);
void rope_apply_ref(float* x, int64_t rows, int64_t row_stride, int64_t n_heads, int64_t head_dim,
                    const int32_t* positions, const float* inv_freq);

}  // namespace shardlm
