// What sampling needs from one row of logits, without the whole vocabulary: the row's top candidates
// and its log-sum-exp (at temperature 1 and at the request's temperature). Each worker selects them
// on its vocabulary slice; rank 0 merges the slices exactly (the global top-C is within the union of
// the slices' top-C, and log-sum-exps combine exactly).
#pragma once

#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

namespace shardlm {

// A request's changes to a row's logits (OpenAI's and vLLM's sampling parameters), applied before
// anything is selected from it, in vLLM's order: the request's logit bias added; the repetition
// penalty on every token of the prompt or the output (a positive logit divided by it, another
// multiplied); then minus frequency times the token's count in the output and minus presence where
// that count is not 0.
struct LogitPenalties {
  float repetition = 1.0f;      // > 0; 1 = off
  float presence = 0.0f;        // 0 = off
  float frequency = 0.0f;       // 0 = off
  std::vector<int32_t> tokens;  // the tokens changed, strictly ascending
  std::vector<int32_t> counts;  // per token: its count in the output; 0: in the prompt only; -1: in neither (a bias only)
  std::vector<float> biases;    // empty, or per token its logit bias
  bool active() const { return !tokens.empty(); }
};

// Per logits row of a step: how many top candidates are needed, the temperature of lse_t and the
// penalties its logits take first.
struct RowRequest {
  RowRequest() = default;
  RowRequest(int32_t candidates_, float temperature_, LogitPenalties penalties_ = {})
      : candidates(candidates_), temperature(temperature_), penalties(std::move(penalties_)) {}
  int32_t candidates = 1;
  float temperature = 1.0f;  // <= 0: greedy; lse_t is then the temperature-1 value
  LogitPenalties penalties;
  int32_t target = -1;  // >= 0: this token's logit is wanted as well (RowCandidates::target_logit)
};

// Applies p to logits[0..n) whose token ids start at token_offset (the penalised tokens outside that
// range are another slice's).
void apply_penalties(float* logits, int64_t n, int64_t token_offset, const LogitPenalties& p);

struct TokenLogit {
  float logit = 0.0f;
  int32_t token = 0;
};

// Candidates sorted by logit descending, ties by token id ascending. Every token with a logit greater
// than `bound` is among them; bound = -inf means the candidates are the whole row.
struct RowCandidates {
  std::vector<TokenLogit> top;
  float bound = -std::numeric_limits<float>::infinity();
  float lse = 0.0f;    // log sum exp(logit)
  // log sum exp((logit - top[0].logit) / T): relative to the row's largest logit, so that it stays
  // exact at any T > 0 (log sum exp(logit / T) itself overflows a float at small T); -inf when empty.
  float lse_t_rel = 0.0f;
  // The request's target token's (penalised) logit; NaN without a target or, in a slice's
  // candidates, when another slice holds it.
  float target_logit = std::numeric_limits<float>::quiet_NaN();
  bool complete() const { return bound == -std::numeric_limits<float>::infinity(); }
};

// Orders candidates: higher logit first, equal logits by lower token id.
inline bool better_candidate(const TokenLogit& a, const TokenLogit& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.token < b.token);
}

// The sums of exp(x[i] - max) and exp((x[i] - max) * inv_t) over a row that the log-sum-exps need
// (kernels/elementwise.h's vectorised exp_sums on the workers).
using ExpSumsFn = void (*)(const float* x, int64_t n, float max, float inv_t, double* sum, double* sum_t);

// Selects from logits[0..n) whose token ids start at token_offset, after request.penalties (applied to
// a copy); exp_sums null: a scalar loop.
RowCandidates select_row_candidates(const float* logits, int64_t n, int64_t token_offset, const RowRequest& request,
                                    ExpSumsFn exp_sums = nullptr);

// How many of x[0..n) are >= value (a token's rank in a row when value is its logit; slices' counts add up).
int64_t count_at_least(const float* x, int64_t n, float value);

// Merges the candidates of disjoint vocabulary slices of one row (keeps request.candidates).
RowCandidates merge_row_candidates(const std::vector<RowCandidates>& parts, const RowRequest& request);

}  // namespace shardlm
