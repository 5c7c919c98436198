// Fuzz target: what a worker reads from rank 0 — the 32-byte StepHeader (check_step_header) and a
// StepPlan payload (decode_step_plan). The input's first 32 bytes are the header, the rest the
// payload. Both must either throw shardlm::Error or accept; an accepted plan must be consistent
// (positions per token, contiguous segments covering the batch, logit rows inside it, one row request
// per logit row unless full logits, penalties a count per ascending token id) and encode back to a plan that decodes to the same values.
// Anything else (another exception, a crash, a sanitizer report) is a bug.
#include <cstdint>
#include <cstring>
#include <vector>

#include <google/protobuf/stubs/logging.h>

#include "common/error.h"
#include "proto/step_message.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

bool same_batch(const shardlm::StepBatch& a, const shardlm::StepBatch& b) {
  if (a.tokens != b.tokens || a.positions != b.positions || a.logit_rows != b.logit_rows) return false;
  if (a.segments.size() != b.segments.size()) return false;
  for (size_t i = 0; i < a.segments.size(); ++i) {
    const auto& x = a.segments[i];
    const auto& y = b.segments[i];
    if (x.seq != y.seq || x.first_row != y.first_row || x.rows != y.rows || x.first_position != y.first_position) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shardlm;
  static const bool quiet = (google::protobuf::SetLogHandler(nullptr), true);
  (void)quiet;
  if (size >= sizeof(StepHeader)) {
    StepHeader header;
    std::memcpy(&header, data, sizeof header);
    try {
      check_step_header(header);
      FUZZ_CHECK(header.version == kStepProtocolVersion);
      FUZZ_CHECK(header.payload_bytes >= 0);
    } catch (const Error&) {
    }
    data += sizeof header;
    size -= sizeof header;
  }
  const std::vector<uint8_t> payload(data, data + size);
  std::vector<RowRequest> rows;
  bool full_logits = false;
  StepBatch batch;
  try {
    batch = decode_step_plan(payload, rows, full_logits);
  } catch (const Error&) {
    return 0;
  }
  FUZZ_CHECK(batch.positions.size() == batch.tokens.size());
  int64_t covered = 0;
  for (const SequenceSegment& s : batch.segments) {
    FUZZ_CHECK(s.rows >= 0 && s.first_row == covered);
    covered += s.rows;
  }
  FUZZ_CHECK(covered == batch.size());
  for (const int32_t r : batch.logit_rows) FUZZ_CHECK(r >= 0 && r < batch.size());
  if (!full_logits) FUZZ_CHECK(rows.size() == batch.logit_rows.size());

  std::vector<RowRequest> rows2;
  bool full2 = !full_logits;
  const StepBatch again = decode_step_plan(encode_step_plan(batch, rows, full_logits), rows2, full2);
  FUZZ_CHECK(same_batch(batch, again));
  FUZZ_CHECK(full2 == full_logits && rows2.size() == rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    FUZZ_CHECK(rows2[i].candidates == rows[i].candidates);
    FUZZ_CHECK(std::memcmp(&rows2[i].temperature, &rows[i].temperature, sizeof rows[i].temperature) == 0);
    // Penalties: only consistent ones are accepted (a count per token, ids ascending), and they round-trip.
    const LogitPenalties& p = rows[i].penalties;
    const LogitPenalties& q = rows2[i].penalties;
    FUZZ_CHECK(p.counts.size() == p.tokens.size());
    FUZZ_CHECK(p.biases.empty() || p.biases.size() == p.tokens.size());
    for (size_t k = 0; k < p.tokens.size(); ++k) {
      FUZZ_CHECK(p.tokens[k] >= 0 && (k == 0 || p.tokens[k] > p.tokens[k - 1]) && p.counts[k] >= -1);
    }
    FUZZ_CHECK(q.tokens == p.tokens && q.counts == p.counts && q.biases == p.biases);
    if (p.active()) FUZZ_CHECK(p.repetition > 0.0f && q.repetition == p.repetition && q.presence == p.presence && q.frequency == p.frequency);
  }
  return 0;
}
