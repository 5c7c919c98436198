#include "coordinator/sampler.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"

namespace shardlm {

void validate_sampling(const SamplingParams& p) {
  if (!(p.temperature >= 0.0f) || !std::isfinite(p.temperature)) fail("temperature must be >= 0 (got {})", p.temperature);
  if (p.top_k < 0) fail("top_k must be >= 0 (got {})", p.top_k);
  if (p.top_k > 65536) fail("top_k must be <= 65536 (got {})", p.top_k);
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) fail("top_p must be in (0, 1] (got {})", p.top_p);
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) fail("min_p must be in [0, 1] (got {})", p.min_p);
  if (!(p.presence_penalty >= -2.0f && p.presence_penalty <= 2.0f)) {
    fail("presence_penalty must be in [-2, 2] (got {})", p.presence_penalty);
  }
  if (!(p.frequency_penalty >= -2.0f && p.frequency_penalty <= 2.0f)) {
    fail("frequency_penalty must be in [-2, 2] (got {})", p.frequency_penalty);
  }
  if (!(p.repetition_penalty > 0.0f) || !std::isfinite(p.repetition_penalty)) {
    fail("repetition_penalty must be > 0 (got {})", p.repetition_penalty);
  }
}

int32_t candidates_needed(const SamplingParams& p, int32_t top_logprobs) {
  int32_t c = std::max<int32_t>(1, top_logprobs + 1);
  if (p.temperature > 0.0f) c = std::max(c, p.top_k > 0 ? p.top_k : 64);
  return c;
}

int32_t argmax(const float* logits, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i) {
    if (logits[i] > logits[best]) best = i;
  }
  return static_cast<int32_t>(best);
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) { validate_sampling(params); }

int32_t Sampler::choose(const RowCandidates& row, double u) const {
  const std::vector<TokenLogit>& c = row.top;
  const double t = params_.temperature;
  const double lmax = c.front().logit;
  const size_t known = c.size();
  // `open`: the kept set may reach past the known candidates (tokens with logit <= bound).
  bool open = !row.complete();
  size_t keep = known;
  double z = 0.0;
  if (params_.top_k > 0) {
    if (static_cast<size_t>(params_.top_k) <= known) {
      keep = static_cast<size_t>(params_.top_k);
      open = false;
    } else if (open) {
      return -1;
    }
    for (size_t i = 0; i < keep; ++i) z += std::exp((c[i].logit - lmax) / t);
  } else {
    // At least the largest logit's own term (exp(0)), whatever the float rounding of the sum.
    z = std::max(1.0, std::exp(static_cast<double>(row.lse_t_rel)));
  }
  auto prob = [&](double logit) { return std::exp((logit - lmax) / t) / z; };
  if (params_.min_p > 0.0f) {
    const double floor = params_.min_p * prob(lmax);
    size_t n = 1;
    while (n < keep && prob(c[n].logit) >= floor) ++n;
    if (n == keep && open) {
      if (prob(row.bound) >= floor) return -1;  // tokens past the candidates may pass the floor
    }
    keep = n;
    open = false;
  }
  if (params_.top_p < 1.0f) {
    double cum = 0.0;
    size_t n = 0;
    while (n < keep) {
      cum += prob(c[n++].logit);
      if (cum >= params_.top_p) break;
    }
    if (cum < params_.top_p && open) return -1;
    if (cum >= params_.top_p) open = false;
    keep = std::max<size_t>(n, 1);
  }
  double mass = 0.0;
  if (open) {
    mass = 1.0;  // the whole vocabulary
  } else {
    for (size_t i = 0; i < keep; ++i) mass += prob(c[i].logit);
  }
  const double target = u * mass;
  double cum = 0.0;
  for (size_t i = 0; i < keep; ++i) {
    cum += prob(c[i].logit);
    if (target < cum) return c[i].token;
  }
  if (open) return -1;  // the draw fell into the tail past the candidates
  return c[keep - 1].token;
}

int32_t Sampler::sample(const RowCandidates& row, const std::function<void(std::vector<float>&)>& full_row) {
  if (row.top.empty()) fail("sampling: a logits row without candidates");
  if (params_.temperature == 0.0f) return row.top.front().token;
  // 53 random bits -> uniform in [0, 1); one draw per token whatever path decides it.
  const double u = static_cast<double>(rng_() >> 11) * (1.0 / 9007199254740992.0);
  int32_t token = choose(row, u);
  if (token >= 0) return token;
  ++fetches_;
  std::vector<float> logits;
  full_row(logits);
  RowRequest all{static_cast<int32_t>(logits.size()), params_.temperature};
  token = choose(select_row_candidates(logits.data(), static_cast<int64_t>(logits.size()), 0, all), u);
  if (token < 0) fail("sampling: the whole row did not decide a token");
  return token;
}

int32_t Sampler::sample(const float* logits, int64_t vocab) {
  if (params_.temperature == 0.0f) return argmax(logits, vocab);
  RowRequest all{static_cast<int32_t>(vocab), params_.temperature};
  const RowCandidates row = select_row_candidates(logits, vocab, 0, all);
  const double u = static_cast<double>(rng_() >> 11) * (1.0 / 9007199254740992.0);
  const int32_t token = choose(row, u);
  if (token < 0) fail("sampling: the whole row did not decide a token");
  return token;
}

}  // namespace shardlm
