#include "proto/step_message.h"

#include <cmath>
#include <limits>

#include "common/error.h"
#include "proto/step.pb.h"

namespace shardlm {
namespace {

LogitPenalties decode_penalties(const step::RowRequest& m) {
  LogitPenalties p;
  p.repetition = m.repetition_penalty();
  p.presence = m.presence_penalty();
  p.frequency = m.frequency_penalty();
  p.tokens.assign(m.penalty_tokens().begin(), m.penalty_tokens().end());
  p.counts.assign(m.penalty_counts().begin(), m.penalty_counts().end());
  p.biases.assign(m.penalty_biases().begin(), m.penalty_biases().end());
  if (p.counts.size() != p.tokens.size()) fail("step message: {} penalty counts for {} tokens", p.counts.size(), p.tokens.size());
  if (!p.biases.empty() && p.biases.size() != p.tokens.size()) {
    fail("step message: {} logit biases for {} tokens", p.biases.size(), p.tokens.size());
  }
  for (float b : p.biases) {  // -inf bans a token (min_tokens' stop tokens)
    if (std::isnan(b) || b == std::numeric_limits<float>::infinity()) fail("step message: a logit bias is NaN or +inf");
  }
  if (!(p.repetition > 0.0f) || !std::isfinite(p.repetition) || !std::isfinite(p.presence) || !std::isfinite(p.frequency)) {
    fail("step message: penalties out of range (repetition {}, presence {}, frequency {})", p.repetition, p.presence, p.frequency);
  }
  for (size_t i = 0; i < p.tokens.size(); ++i) {
    if (p.tokens[i] < 0 || (i > 0 && p.tokens[i] <= p.tokens[i - 1])) fail("step message: penalty tokens are not ascending ids");
    if (p.counts[i] < -1) fail("step message: a penalty count below -1");
  }
  return p;
}

}  // namespace

std::vector<uint8_t> encode_step_plan(const StepBatch& batch, const std::vector<RowRequest>& rows, bool full_logits) {
  step::StepPlan plan;
  plan.mutable_tokens()->Assign(batch.tokens.begin(), batch.tokens.end());
  plan.mutable_positions()->Assign(batch.positions.begin(), batch.positions.end());
  for (const SequenceSegment& s : batch.segments) {
    step::Segment* m = plan.add_segments();
    m->set_seq(s.seq);
    m->set_first_row(s.first_row);
    m->set_rows(s.rows);
    m->set_first_position(s.first_position);
  }
  plan.mutable_logit_rows()->Assign(batch.logit_rows.begin(), batch.logit_rows.end());
  for (const RowRequest& r : rows) {
    step::RowRequest* m = plan.add_rows();
    m->set_candidates(r.candidates);
    m->set_temperature(r.temperature);
    if (r.target >= 0) m->set_target(r.target);
    const LogitPenalties& p = r.penalties;
    if (p.active()) {
      m->set_repetition_penalty(p.repetition);
      m->set_presence_penalty(p.presence);
      m->set_frequency_penalty(p.frequency);
      m->mutable_penalty_tokens()->Assign(p.tokens.begin(), p.tokens.end());
      m->mutable_penalty_counts()->Assign(p.counts.begin(), p.counts.end());
      m->mutable_penalty_biases()->Assign(p.biases.begin(), p.biases.end());
    }
  }
  plan.set_full_logits(full_logits);
  std::vector<uint8_t> out(plan.ByteSizeLong());
  if (!plan.SerializeToArray(out.data(), static_cast<int>(out.size()))) fail("step plan: serialisation failed");
  return out;
}

StepBatch decode_step_plan(const std::vector<uint8_t>& bytes, std::vector<RowRequest>& rows, bool& full_logits) {
  step::StepPlan plan;
  if (!plan.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    fail("step message: not a valid StepPlan ({} bytes)", bytes.size());
  }
  StepBatch b;
  b.tokens.assign(plan.tokens().begin(), plan.tokens().end());
  b.positions.assign(plan.positions().begin(), plan.positions().end());
  for (const step::Segment& m : plan.segments()) {
    b.segments.push_back(SequenceSegment{m.seq(), m.first_row(), m.rows(), m.first_position()});
  }
  b.logit_rows.assign(plan.logit_rows().begin(), plan.logit_rows().end());
  full_logits = plan.full_logits();
  rows.clear();
  for (const step::RowRequest& m : plan.rows()) {
    RowRequest r{m.candidates(), m.temperature(), {}};
    if (m.penalty_tokens_size() > 0) r.penalties = decode_penalties(m);
    if (m.has_target()) {
      if (m.target() < 0) fail("step message: target token {} is negative", m.target());
      r.target = m.target();
    }
    rows.push_back(std::move(r));
  }

  if (b.positions.size() != b.tokens.size()) fail("step message: {} positions for {} tokens", b.positions.size(), b.tokens.size());
  int64_t covered = 0;
  for (const SequenceSegment& s : b.segments) {
    if (s.rows < 0 || s.first_row != covered) fail("step message: segment rows are not contiguous");
    covered += s.rows;
  }
  if (covered != static_cast<int64_t>(b.tokens.size())) fail("step message: segments cover {} of {} rows", covered, b.tokens.size());
  for (int32_t r0 : b.logit_rows) {
    if (r0 < 0 || r0 >= b.size()) fail("step message: logit row {} outside the batch", r0);
  }
  if (!full_logits && rows.size() != b.logit_rows.size()) {
    fail("step message: {} row requests for {} logit rows", rows.size(), b.logit_rows.size());
  }
  return b;
}

void check_step_header(const StepHeader& h) {
  if (h.version != kStepProtocolVersion) {
    fail("step protocol version {} received, this worker speaks {}", h.version, kStepProtocolVersion);
  }
  if (h.command < 1 || h.command > static_cast<uint32_t>(StepCommand::kRowRanks)) fail("unknown step command {}", h.command);
  if (h.payload_bytes < 0 || h.payload_bytes > (int64_t{1} << 32)) fail("bad step payload size {}", h.payload_bytes);
}

}  // namespace shardlm
