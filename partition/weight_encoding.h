// How a worker stores its weight matrices in memory, for the planner's memory estimate: f32, bf16, or
// one of the quantised formats of kernels/qgemm.h (int8 with one scale per row; 4-bit values in blocks
// of 32 along the input dimension with one 16-bit scale per block). Vectors (norms, scalars, router
// scales) are always kept in f32.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace shardlm {

enum class WeightEncoding { kF32, kBF16, kInt8, kQ4 };

// "f32", "bf16", "int8", "q4"; throws Error listing the valid names.
WeightEncoding parse_weight_encoding(const std::string& name);
const char* weight_encoding_name(WeightEncoding e);

// Bytes of `elements` matrix weights: 4, 2, 1 (int8 with one scale per row), 0.5 + 2/32 (q4: 4.5 bits)
// per weight — the layouts of kernels/qgemm.h.
int64_t matrix_bytes(WeightEncoding e, int64_t elements);

// Formats smaller than `e`, largest (most precise) first: for bf16 {int8, q4}.
std::vector<WeightEncoding> smaller_encodings(WeightEncoding e);

}  // namespace shardlm
