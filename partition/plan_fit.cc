// make_plan: the layout checked against the memory budget, with the alternatives that would fit when
// it does not.
#include <string>
#include <vector>

#include <fmt/format.h>

#include "common/error.h"
#include "partition/byte_size.h"
#include "partition/plan.h"

namespace shardlm {
namespace {

bool fits(const ModelConfig& config, const PlanOptions& options) {
  return make_layout(config, options).max_total_bytes() <= options.memory_per_worker_bytes;
}

std::string workers_word(int n) { return n == 1 ? "1 worker" : fmt::format("{} workers", n); }

// The longest context (a multiple of the KV block) below `context` that fits, or 0.
int64_t longest_fitting_context(const ModelConfig& config, PlanOptions options, int64_t context) {
  const int64_t block = options.kv_block;
  int64_t lo = 0;                          // fits (0 = nothing found yet)
  int64_t hi = (context - 1) / block + 1;  // in blocks; known not to fit
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    options.context_tokens = mid * block;
    if (fits(config, options)) lo = mid; else hi = mid;
  }
  return lo * block;
}

}  // namespace

Plan make_plan(const ModelConfig& config, const PlanOptions& options) {
  Plan plan = make_layout(config, options);
  const int64_t budget = options.memory_per_worker_bytes;
  if (budget == 0 || plan.max_total_bytes() <= budget) return plan;

  const int W = options.num_workers;
  const int64_t context = plan.options.context_tokens;
  PlanOptions at_context = options;
  at_context.context_tokens = context;
  std::vector<std::string> alternatives;

  int more = 0;
  for (int n = W + 1; n <= config.num_heads && more == 0; ++n) {
    PlanOptions o = at_context;
    o.num_workers = n;
    if (fits(config, o)) more = n;
  }
  if (more > 0) alternatives.push_back(fmt::format("fits with {}", workers_word(more)));

  bool smaller_fits = false;
  for (WeightEncoding e : smaller_encodings(plan.weights)) {
    PlanOptions o = at_context;
    o.weights = weight_encoding_name(e);
    if (fits(config, o)) {
      alternatives.push_back(fmt::format("with --weights {} on {}", o.weights, W));
      smaller_fits = true;
      break;
    }
  }
  if (!smaller_fits) {
    const int64_t shorter = longest_fitting_context(config, at_context, context);
    if (shorter > 0) alternatives.push_back(fmt::format("with --context {} on {}", shorter, W));
  }
  std::string advice;
  if (alternatives.empty()) {
    advice = fmt::format("it fits neither on up to {} workers (one per query head) with {} weights, nor on {} with a "
                         "smaller weight format or a shorter context",
                         config.num_heads, weight_encoding_name(plan.weights), W);
  } else {
    advice = alternatives[0];
    for (size_t i = 1; i < alternatives.size(); ++i) advice += ", or " + alternatives[i];
  }
  fail("{} needs {} per worker on {} with {} weights at {} context (budget {}); {}", config.variant,
       format_bytes(plan.max_total_bytes()), workers_word(W), weight_encoding_name(plan.weights), context,
       format_bytes(budget), advice);
}

}  // namespace shardlm
