// Gemma 4 MoE routing: f32 softmax over all experts, top-k (ties -> lower expert id), renormalise
// over the chosen k, then multiply by the per-expert scale. Output order: descending probability.
#include "kernels/moe_routing.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "common/error.h"

namespace shardlm {

void moe_route(const float* logits, int64_t rows, int64_t n_experts, int64_t top_k, const float* per_expert_scale,
               int32_t* expert_ids, float* weights) {
  if (rows < 0) fail("moe_route: negative row count {}", rows);
  if (n_experts <= 0) fail("moe_route: n_experts must be positive, got {}", n_experts);
  if (top_k <= 0 || top_k > n_experts) fail("moe_route: top_k {} not in [1, n_experts = {}]", top_k, n_experts);
  std::vector<float> prob(static_cast<size_t>(n_experts));
  std::vector<char> taken(static_cast<size_t>(n_experts));
  for (int64_t r = 0; r < rows; ++r) {
    const float* l = logits + r * n_experts;
    float m = -std::numeric_limits<float>::infinity();
    for (int64_t e = 0; e < n_experts; ++e) m = std::fmax(m, l[e]);
    float sum = 0.0f;
    for (int64_t e = 0; e < n_experts; ++e) {
      prob[e] = std::exp(l[e] - m);
      sum += prob[e];
    }
    for (int64_t e = 0; e < n_experts; ++e) prob[e] /= sum;

    std::fill(taken.begin(), taken.end(), 0);
    int32_t* ids = expert_ids + r * top_k;
    float* w = weights + r * top_k;
    float chosen_sum = 0.0f;
    for (int64_t t = 0; t < top_k; ++t) {
      int64_t best = -1;
      for (int64_t e = 0; e < n_experts; ++e) {
        if (taken[e]) continue;
        // Strictly greater: on ties the lower id (seen first) stays. NaN never wins.
        if (best < 0 || prob[e] > prob[best]) best = e;
      }
      taken[best] = 1;
      ids[t] = static_cast<int32_t>(best);
      w[t] = prob[best];
      chosen_sum += prob[best];
    }
    for (int64_t t = 0; t < top_k; ++t) {
      w[t] /= chosen_sum;
      if (per_expert_scale != nullptr) w[t] *= per_expert_scale[ids[t]];
    }
  }
}

}  // namespace shardlm
