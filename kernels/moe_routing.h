// Gemma 4 MoE routing: softmax over all experts, top-k, renormalise, multiply by per-expert scale.
// Ties are broken towards the lower expert id, so routing is deterministic.
#pragma once

#include <cstdint>

namespace shardlm {

// logits: [rows, n_experts]. expert_ids / weights: [rows, top_k]. per_expert_scale may be null.
void moe_route(const float* logits, int64_t rows, int64_t n_experts, int64_t top_k, const float* per_expert_scale,
               int32_t* expert_ids, float* weights);

}  // namespace shardlm
