#include "coordinator/scheduler_request.h"

#include <algorithm>
#include <limits>

namespace shardlm {
namespace {

constexpr float kMinusInfinity = -std::numeric_limits<float>::infinity();

// The prompt's tokens (count 0) merged with the biased ones (count -1 unless in the prompt).
LogitPenalties fixed_tokens(const std::vector<int32_t>& prompt_set, const std::map<int32_t, float>& biases) {
  LogitPenalties f;
  auto add = [&](int32_t token, int32_t count, float bias) {
    f.tokens.push_back(token);
    f.counts.push_back(count);
    f.biases.push_back(bias);
  };
  auto bias = biases.begin();
  for (int32_t token : prompt_set) {
    for (; bias != biases.end() && bias->first < token; ++bias) add(bias->first, -1, bias->second);
    const bool biased = bias != biases.end() && bias->first == token;
    add(token, 0, biased ? bias->second : 0.0f);
    if (biased) ++bias;
  }
  for (; bias != biases.end(); ++bias) add(bias->first, -1, bias->second);
  if (biases.empty()) f.biases.clear();
  return f;
}

}  // namespace

Scheduler::Request::Request(uint64_t id_, GenerationRequest r, std::shared_ptr<GenerationObserver> o)
    : id(id_),
      request(std::move(r)),
      observer(std::move(o)),
      sampler(request.sampling),
      prompt_size(static_cast<int64_t>(request.prompt.size())),
      tokens(std::move(request.prompt)),
      submitted(Clock::now()) {
  if (request.guided) constraint = request.guided->start();
  std::vector<int32_t> prompt_set;
  if (request.sampling.repetition_penalty != 1.0f) {
    prompt_set = tokens;
    std::sort(prompt_set.begin(), prompt_set.end());
    prompt_set.erase(std::unique(prompt_set.begin(), prompt_set.end()), prompt_set.end());
  }
  fixed = fixed_tokens(prompt_set, request.logit_bias);
  if (request.min_tokens > 0 && !request.stop_token_ids.empty()) {
    std::map<int32_t, float> banned = request.logit_bias;
    for (int32_t t : request.stop_token_ids) banned[t] = kMinusInfinity;
    fixed_min = fixed_tokens(prompt_set, banned);
  }
}

bool Scheduler::Request::is_stop_token(int32_t token) const {
  return std::find(request.stop_token_ids.begin(), request.stop_token_ids.end(), token) != request.stop_token_ids.end();
}

RowRequest Scheduler::Request::row() const {
  const SamplingParams& s = request.sampling;
  RowRequest row{candidates_needed(s, request.top_logprobs), s.temperature, {}};
  if (!changes_logits()) return row;
  const LogitPenalties& base = before_min_tokens() ? fixed_min : fixed;
  LogitPenalties& p = row.penalties;
  p.repetition = s.repetition_penalty;
  p.presence = s.presence_penalty;
  p.frequency = s.frequency_penalty;
  // The fixed tokens merged with the output's (which take their counts), ascending.
  const bool biased = !base.biases.empty();
  size_t f = 0;
  auto take_fixed_before = [&](int64_t limit) {
    for (; f < base.tokens.size() && base.tokens[f] < limit; ++f) {
      p.tokens.push_back(base.tokens[f]);
      p.counts.push_back(base.counts[f]);
      if (biased) p.biases.push_back(base.biases[f]);
    }
  };
  for (const auto& [token, count] : output_counts) {
    take_fixed_before(token);
    float bias = 0.0f;
    if (f < base.tokens.size() && base.tokens[f] == token) {
      if (biased) bias = base.biases[f];
      ++f;
    }
    p.tokens.push_back(token);
    p.counts.push_back(count);
    if (biased) p.biases.push_back(bias);
  }
  take_fixed_before(std::numeric_limits<int64_t>::max());
  return row;
}

void Scheduler::Request::add_prompt_logprob(int32_t target, const RowCandidates& c, int64_t rank) {
  GeneratedToken p;
  p.token = target;
  p.logprob = c.target_logit - c.lse;
  p.rank = rank;
  for (int32_t k = 0; k < request.prompt_logprobs && k < static_cast<int32_t>(c.top.size()); ++k) {
    p.top.push_back(TokenLogprob{c.top[k].token, c.top[k].logit - c.lse});
  }
  prompt_lp.push_back(std::move(p));
}

void Scheduler::Request::send_prompt_logprobs() {
  if (!collecting_prompt_logprobs()) return;
  prompt_lp_sent = true;
  observer->on_prompt_logprobs(prompt_lp);
  prompt_lp = {};
}

Scheduler::Request::GuidedPick Scheduler::Request::sample_guided(std::vector<float>& logits, int32_t& token,
                                                                 RowCandidates& candidates) {
  std::vector<uint8_t> allowed;
  const bool complete = constraint->allowed_tokens(allowed);
  allowed.resize(logits.size(), 0);
  for (int32_t t : request.stop_token_ids) {
    if (t >= 0 && static_cast<size_t>(t) < allowed.size()) allowed[static_cast<size_t>(t)] = complete;
  }
  bool any = false;
  for (size_t v = 0; v < logits.size(); ++v) {
    if (allowed[v] && logits[v] > kMinusInfinity) {
      any = true;
    } else {
      logits[v] = kMinusInfinity;
    }
  }
  // A whole answer that nothing may follow (its stop tokens ignored or banned) ends there.
  if (!any) return complete ? GuidedPick::kWhole : GuidedPick::kStuck;
  const auto n = static_cast<int64_t>(logits.size());
  token = sampler.sample(logits.data(), n);
  // A draw at the very top of [0, 1) can fall past the last token of non-zero probability.
  if (!allowed[static_cast<size_t>(token)]) token = argmax(logits.data(), n);
  candidates = select_row_candidates(logits.data(), n, 0, RowRequest{std::max<int32_t>(1, request.top_logprobs), 1.0f});
  // Log-probabilities over the tokens allowed: the others are no alternatives.
  candidates.top.erase(std::remove_if(candidates.top.begin(), candidates.top.end(),
                                      [](const TokenLogit& t) { return t.logit == kMinusInfinity; }),
                       candidates.top.end());
  return GuidedPick::kToken;
}

}  // namespace shardlm
