// What the scheduler keeps per request while it waits and runs (its sequence, the tokens fed and
// generated, the KV reserved, the per-request logit penalties, the prompt's log-probabilities and the
// guided-decoding constraint), and the rows of one step. Private to coordinator/scheduler.cc.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "coordinator/guided_decoding.h"
#include "coordinator/sampler.h"
#include "coordinator/scheduler.h"

namespace shardlm {

struct Scheduler::Request {
  using Clock = std::chrono::steady_clock;

  uint64_t id = 0;
  GenerationRequest request;
  std::shared_ptr<GenerationObserver> observer;
  Sampler sampler;
  int seq = -1;
  int64_t prompt_size = 0;
  std::vector<int32_t> tokens;  // the sequence: the prompt (moved out of `request`), then each sampled token
  int64_t fed = 0;              // tokens in the KV cache (the rest wait to be fed)
  int32_t generated = 0;
  int64_t reserved = 0;  // KV positions reserved: whole blocks, for every position written so far
  bool finished = false;
  Clock::time_point submitted, scheduled, first_token, last_token_time;
  bool was_scheduled = false;
  // With penalties: each generated token's count. With penalties, a logit bias or min_tokens: what
  // does not change while it runs, the prompt's distinct tokens (with a repetition penalty: count 0) and the
  // logit bias's (count -1 when not in the prompt), ascending; `fixed_min` also bans the stop tokens
  // (bias -inf) for the first min_tokens tokens.
  std::map<int32_t, int32_t> output_counts;
  LogitPenalties fixed, fixed_min;
  // prompt_logprobs: the prompt positions' so far (from position 1), until sent to the observer.
  std::vector<GeneratedToken> prompt_lp;
  bool prompt_lp_sent = false;
  std::unique_ptr<TokenConstraint> constraint;  // guided decoding

  Request(uint64_t id_, GenerationRequest r, std::shared_ptr<GenerationObserver> o);

  bool before_min_tokens() const { return generated < request.min_tokens && !request.stop_token_ids.empty(); }
  bool changes_logits() const { return request.sampling.penalised() || !request.logit_bias.empty() || before_min_tokens(); }
  int64_t unfed() const { return static_cast<int64_t>(tokens.size()) - fed; }
  bool is_stop_token(int32_t token) const;
  void add_generated(int32_t token) {
    tokens.push_back(token);
    if (request.sampling.penalised()) ++output_counts[token];
  }
  // What the workers select this sequence's next token from: candidates, temperature, penalties.
  RowRequest row() const;
  // Feeding more than the one token sampled last: the prompt, or after a preemption the prompt and
  // the tokens generated so far (recomputed); its last chunk yields the next token.
  bool prefilling() const { return generated == 0 || unfed() > 1; }

  // Whether the prompt's log-probabilities are still being computed (the first prefill; a
  // preemption keeps those already computed).
  bool collecting_prompt_logprobs() const { return request.prompt_logprobs >= 0 && !prompt_lp_sent; }
  // One prompt position's log-probability from its row's candidates (target_logit finite) and rank.
  void add_prompt_logprob(int32_t target, const RowCandidates& c, int64_t rank);
  // Sends the prompt's log-probabilities (once all are in).
  void send_prompt_logprobs();

  // Guided decoding: masks `logits` (the whole penalised row) in place to the tokens the constraint
  // allows and samples one of them, with `candidates` the masked row's top (the allowed tokens only).
  enum class GuidedPick { kToken, kWhole, kStuck };  // a token; the output is whole and nothing may follow; nothing can continue it
  GuidedPick sample_guided(std::vector<float>& logits, int32_t& token, RowCandidates& candidates);
};

// The logits rows of one step: the request of each and, for a prompt log-probability row, the prompt
// position it gives (-1: a row to sample from).
struct Scheduler::StepRows {
  std::vector<RowRequest> rows;
  std::vector<Request*> owner;
  std::vector<int64_t> prompt_position;
  void add(RowRequest row, Request* r, int64_t position) {
    rows.push_back(std::move(row));
    owner.push_back(r);
    prompt_position.push_back(position);
  }
  size_t size() const { return rows.size(); }
};

}  // namespace shardlm
