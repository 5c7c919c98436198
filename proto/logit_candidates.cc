#include "proto/logit_candidates.h"

#include <algorithm>
#include <cmath>

namespace shardlm {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

float effective_temperature(const RowRequest& r) { return r.temperature > 0.0f ? r.temperature : 1.0f; }

// log(exp(a) + exp(b)) without overflow.
double log_add(double a, double b) {
  if (a == -INFINITY) return b;
  if (b == -INFINITY) return a;
  const double m = std::max(a, b);
  return m + std::log(std::exp(a - m) + std::exp(b - m));
}

// The largest of x[0..n) that is not a NaN (-inf when none is), in eight independent chains (named
// locals, so that they stay in registers) whose compares overlap.
float max_of(const float* x, int64_t n) {
  auto take = [](float m, float v) { return m < v ? v : m; };
  float m0 = kNegInf, m1 = kNegInf, m2 = kNegInf, m3 = kNegInf, m4 = kNegInf, m5 = kNegInf, m6 = kNegInf, m7 = kNegInf;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    m0 = take(m0, x[i]);
    m1 = take(m1, x[i + 1]);
    m2 = take(m2, x[i + 2]);
    m3 = take(m3, x[i + 3]);
    m4 = take(m4, x[i + 4]);
    m5 = take(m5, x[i + 5]);
    m6 = take(m6, x[i + 6]);
    m7 = take(m7, x[i + 7]);
  }
  for (; i < n; ++i) m0 = take(m0, x[i]);
  return take(take(take(m0, m1), take(m2, m3)), take(take(m4, m5), take(m6, m7)));
}

}  // namespace

void apply_penalties(float* logits, int64_t n, int64_t token_offset, const LogitPenalties& p) {
  const auto first = std::lower_bound(p.tokens.begin(), p.tokens.end(), token_offset);
  const auto last = std::lower_bound(first, p.tokens.end(), token_offset + n);
  for (auto it = first; it != last; ++it) {
    float& x = logits[*it - token_offset];
    const auto k = static_cast<size_t>(it - p.tokens.begin());
    const int32_t count = p.counts[k];
    if (!p.biases.empty()) x += p.biases[k];
    if (count < 0) continue;
    // A tiny or huge penalty must not overflow a logit to infinity (taken for a broken model):
    // the result stays within the float range.
    constexpr float kMax = std::numeric_limits<float>::max();
    if (p.repetition != 1.0f) x = std::clamp(x > 0.0f ? x / p.repetition : x * p.repetition, -kMax, kMax);
    if (count > 0) {
      x -= p.frequency * static_cast<float>(count);
      x -= p.presence;
    }
  }
}

RowCandidates select_row_candidates(const float* logits, int64_t n, int64_t token_offset, const RowRequest& request,
                                    ExpSumsFn exp_sums) {
  RowCandidates out;
  if (n <= 0) {
    out.lse = out.lse_t_rel = kNegInf;
    return out;
  }
  if (request.penalties.active()) {
    // The row is the engine's (and read again for full rows): penalised in a copy.
    thread_local std::vector<float> penalised;
    penalised.assign(logits, logits + n);
    apply_penalties(penalised.data(), n, token_offset, request.penalties);
    RowRequest plain{request.candidates, request.temperature, {}};
    plain.target = request.target;
    return select_row_candidates(penalised.data(), n, token_offset, plain, exp_sums);
  }
  if (request.target >= token_offset && request.target < token_offset + n) out.target_logit = logits[request.target - token_offset];
  const float t = effective_temperature(request);
  const int64_t keep = std::clamp<int64_t>(request.candidates, 1, n);
  // The maximum, then a bounded selection: the best `keep` seen so far in a heap ordered worst-first.
  // (In one pass the maximum, live across the heap's calls, was kept in memory: a store-to-load chain
  // per logit. A row of 262144 logits took 0.77 ms so, 0.33 ms now, the sums included.)
  const float max_logit = max_of(logits, n);
  auto worse_first = [](const TokenLogit& a, const TokenLogit& b) { return better_candidate(a, b); };
  std::vector<TokenLogit>& heap = out.top;
  heap.reserve(static_cast<size_t>(keep));
  int64_t i = 0;
  for (; i < keep; ++i) {
    heap.push_back(TokenLogit{logits[i], static_cast<int32_t>(token_offset + i)});
    std::push_heap(heap.begin(), heap.end(), worse_first);
  }
  // Every later logit has a higher token id than all in the heap, so it is better than the worst
  // only with a greater logit (a NaN never is).
  float worst = heap.front().logit;
  for (; i < n; ++i) {
    if (!(logits[i] > worst)) continue;
    std::pop_heap(heap.begin(), heap.end(), worse_first);
    heap.back() = TokenLogit{logits[i], static_cast<int32_t>(token_offset + i)};
    std::push_heap(heap.begin(), heap.end(), worse_first);
    worst = heap.front().logit;
  }
  std::sort(heap.begin(), heap.end(), better_candidate);
  out.bound = keep == n ? kNegInf : heap.back().logit;

  // Each term in float (exp of a value <= 0), summed in double; at temperature 1 (also greedy rows)
  // the two sums are the same.
  // A temperature below 1 / FLT_MAX (a float denormal) would make it inf, and 0 * inf a NaN.
  const float inv_t = std::min(1.0f / t, std::numeric_limits<float>::max());
  double sum = 0.0, sum_t = 0.0;
  if (exp_sums != nullptr) {
    exp_sums(logits, n, max_logit, inv_t, &sum, &sum_t);
  } else {
    for (int64_t i = 0; i < n; ++i) {
      const float d = logits[i] - max_logit;
      sum += std::exp(d);
      if (t != 1.0f) sum_t += std::exp(d * inv_t);
    }
    if (t == 1.0f) sum_t = sum;
  }
  out.lse = static_cast<float>(max_logit + std::log(sum));
  out.lse_t_rel = static_cast<float>(std::log(sum_t));
  return out;
}

int64_t count_at_least(const float* x, int64_t n, float value) {
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i) count += x[i] >= value;
  return count;
}

RowCandidates merge_row_candidates(const std::vector<RowCandidates>& parts, const RowRequest& request) {
  RowCandidates out;
  double lse = -INFINITY, lse_t_rel = -INFINITY;
  float bound = kNegInf;
  float max_logit = kNegInf;
  for (const RowCandidates& p : parts) {
    if (!p.top.empty()) max_logit = std::max(max_logit, p.top.front().logit);
  }
  const double t = effective_temperature(request);
  for (const RowCandidates& p : parts) {
    lse = log_add(lse, p.lse);
    // Each slice's sum is relative to its own largest logit: rescaled to the row's.
    if (!p.top.empty()) {
      lse_t_rel = log_add(lse_t_rel, p.lse_t_rel + (static_cast<double>(p.top.front().logit) - max_logit) / t);
    }
    bound = std::max(bound, p.bound);
    if (!std::isnan(p.target_logit)) out.target_logit = p.target_logit;
    out.top.insert(out.top.end(), p.top.begin(), p.top.end());
  }
  std::sort(out.top.begin(), out.top.end(), better_candidate);
  const size_t keep = static_cast<size_t>(std::max<int32_t>(request.candidates, 1));
  if (out.top.size() > keep) {
    // Dropped candidates have logits <= the last kept one.
    bound = std::max(bound, out.top[keep].logit);
    out.top.resize(keep);
  }
  out.bound = bound;
  out.lse = static_cast<float>(lse);
  out.lse_t_rel = static_cast<float>(lse_t_rel);
  return out;
}

}  // namespace shardlm
