// Token sampling from one row of logits: greedy (temperature 0), temperature, top-k, top-p and
// min-p, deterministic for a seed. Ties go to the lowest token id.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace shardlm {

struct SamplingParams {
  float temperature = 1.0f;  // 0 = greedy
  int32_t top_k = 0;         // 0 = off
  float top_p = 1.0f;        // 1 = off
  float min_p = 0.0f;        // 0 = off
  uint64_t seed = 0;
};

// Throws Error naming the parameter when one is out of range.
void validate_sampling(const SamplingParams& params);

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  int32_t sample(const float* logits, int64_t vocab);
  const SamplingParams& params() const { return params_; }

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> candidates_;
};

int32_t argmax(const float* logits, int64_t n);

}  // namespace shardlm
