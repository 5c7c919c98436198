// One generation request at the token level, as the scheduler runs it, and what comes back: the
// tokens one by one (with log-probabilities when asked) and a summary with usage and timings.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "coordinator/guided_decoding.h"
#include "coordinator/request_error.h"
#include "coordinator/sampler.h"

namespace shardlm {

enum class Priority { kInteractive = 0, kBatch = 1 };

struct GenerationRequest {
  std::vector<int32_t> prompt;           // token ids, BOS included when wanted
  int32_t max_tokens = 256;              // tokens to generate at most (>= 1)
  SamplingParams sampling;
  std::vector<int32_t> stop_token_ids;   // generation ends when one is sampled (it is not emitted)
  std::map<int32_t, float> logit_bias;   // token id -> added to its logit, in [-100, 100] (OpenAI's)
  int32_t min_tokens = 0;                // the stop tokens cannot be sampled before this many tokens (vLLM's)
  int32_t top_logprobs = -1;             // -1: no log-probabilities; 0: the chosen token's; n: plus n best
  // -1: none; 0: each prompt token's log-probability (of the model's raw logits) and rank; n: plus the n
  // best at its position (GenerationObserver::on_prompt_logprobs)
  int32_t prompt_logprobs = -1;
  // Guided decoding: the output held to a form (each sequence starts its own constraint from it).
  std::shared_ptr<const GuidedSpec> guided;
  Priority priority = Priority::kInteractive;
};

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0.0f;  // natural log of the model's probability (temperature 1, before filtering)
};

struct GeneratedToken {
  int32_t token = 0;
  float logprob = 0.0f;                 // set when top_logprobs >= 0
  std::vector<TokenLogprob> top;        // top_logprobs best alternatives, best first
  int64_t rank = 0;                     // prompt tokens: 1 + the tokens of a greater logit (ties count ahead); else 0
};

enum class FinishReason { kStop, kLength, kCancelled, kError };
const char* finish_reason_name(FinishReason reason);  // "stop", "length", "cancelled", "error"

struct GenerationTimings {
  double queue_s = 0;   // submit -> first prompt chunk scheduled
  double prefill_s = 0; // first prompt chunk scheduled -> first token sampled
  double decode_s = 0;  // first token -> last token
  double ttft_s = 0;    // submit -> first token
  double total_s = 0;   // submit -> finish
};

struct GenerationSummary {
  FinishReason reason = FinishReason::kStop;
  std::string error;  // for kError
  RequestErrorCode error_code = RequestErrorCode::kInternal;  // for kError: how front ends report it
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  GenerationTimings timings;
};

// Receives one request's results. Called on the scheduler's thread, in order: on_token for each
// token, then on_finish exactly once (also after cancel and on errors). Must not block; hand work to
// another thread (e.g. post to an io_context) if it is slow.
class GenerationObserver {
 public:
  virtual ~GenerationObserver() = default;
  virtual void on_token(const GeneratedToken& token) = 0;
  virtual void on_finish(const GenerationSummary& summary) = 0;
  // With prompt_logprobs >= 0: the prompt's tokens from its second (position 1 .. size - 1), each
  // with its log-probability given the tokens before it; once, before the first on_token (or the
  // finish of a request whose first token ends it).
  virtual void on_prompt_logprobs(const std::vector<GeneratedToken>& positions) { (void)positions; }
};

}  // namespace shardlm
