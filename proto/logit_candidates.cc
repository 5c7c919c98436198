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

}  // namespace

RowCandidates select_row_candidates(const float* logits, int64_t n, int64_t token_offset, const RowRequest& request,
                                    ExpSumsFn exp_sums) {
  RowCandidates out;
  if (n <= 0) {
    out.lse = out.lse_t = kNegInf;
    return out;
  }
  const float t = effective_temperature(request);
  const int64_t keep = std::clamp<int64_t>(request.candidates, 1, n);
  // One pass for the maximum and a bounded selection: the best `keep` seen so far in a heap ordered
  // worst-first.
  float max_logit = kNegInf;
  auto worse_first = [](const TokenLogit& a, const TokenLogit& b) { return better_candidate(a, b); };
  std::vector<TokenLogit>& heap = out.top;
  heap.reserve(static_cast<size_t>(keep));
  for (int64_t i = 0; i < n; ++i) {
    max_logit = std::max(max_logit, logits[i]);
    const TokenLogit c{logits[i], static_cast<int32_t>(token_offset + i)};
    if (static_cast<int64_t>(heap.size()) < keep) {
      heap.push_back(c);
      std::push_heap(heap.begin(), heap.end(), worse_first);
    } else if (better_candidate(c, heap.front())) {
      std::pop_heap(heap.begin(), heap.end(), worse_first);
      heap.back() = c;
      std::push_heap(heap.begin(), heap.end(), worse_first);
    }
  }
  std::sort(heap.begin(), heap.end(), better_candidate);
  out.bound = keep == n ? kNegInf : heap.back().logit;

  // Each term in float (exp of a value <= 0), summed in double; at temperature 1 (also greedy rows)
  // the two sums are the same.
  const float inv_t = 1.0f / t;
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
  out.lse_t = static_cast<float>(max_logit / static_cast<double>(t) + std::log(sum_t));
  return out;
}

RowCandidates merge_row_candidates(const std::vector<RowCandidates>& parts, const RowRequest& request) {
  RowCandidates out;
  double lse = -INFINITY, lse_t = -INFINITY;
  float bound = kNegInf;
  for (const RowCandidates& p : parts) {
    lse = log_add(lse, p.lse);
    lse_t = log_add(lse_t, p.lse_t);
    bound = std::max(bound, p.bound);
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
  out.lse_t = static_cast<float>(lse_t);
  return out;
}

}  // namespace shardlm
