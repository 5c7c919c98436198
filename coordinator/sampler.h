// Token sampling from one row of logits: greedy (temperature 0), temperature, top-k, top-p and
// min-p, deterministic for a seed. Ties go to the lowest token id. Works on a row's top candidates
// and log-sum-exp (what the workers send); when the candidates cannot decide (a nucleus or min-p set
// reaching past them, or a draw landing in the tail), it asks for the whole row, so the result is
// always exactly that of sampling from the whole row.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include "proto/logit_candidates.h"

namespace shardlm {

struct SamplingParams {
  float temperature = 1.0f;  // 0 = greedy
  int32_t top_k = 0;         // 0 = off
  float top_p = 1.0f;        // 1 = off
  float min_p = 0.0f;        // 0 = off
  uint64_t seed = 0;
  // On the tokens the sequence holds (proto/logit_candidates.h LogitPenalties), as vLLM's.
  float presence_penalty = 0.0f;    // [-2, 2]; 0 = off
  float frequency_penalty = 0.0f;   // [-2, 2]; 0 = off
  float repetition_penalty = 1.0f;  // > 0; 1 = off
  bool penalised() const { return presence_penalty != 0.0f || frequency_penalty != 0.0f || repetition_penalty != 1.0f; }
};

// Throws Error naming the parameter when one is out of range.
void validate_sampling(const SamplingParams& params);

// Candidates per row the workers should send for these parameters (and top_logprobs alternatives).
int32_t candidates_needed(const SamplingParams& params, int32_t top_logprobs);

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  // full_row(out) must fill the whole vocabulary row of logits when called.
  int32_t sample(const RowCandidates& row, const std::function<void(std::vector<float>&)>& full_row);
  int32_t sample(const float* logits, int64_t vocab);  // from a whole row
  const SamplingParams& params() const { return params_; }
  int64_t full_row_fetches() const { return fetches_; }

 private:
  // The token for uniform draw u in [0, 1), or -1 when the candidates cannot decide.
  int32_t choose(const RowCandidates& row, double u) const;
  SamplingParams params_;
  std::mt19937_64 rng_;
  int64_t fetches_ = 0;
};

int32_t argmax(const float* logits, int64_t n);

}  // namespace shardlm
