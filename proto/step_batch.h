// One forward step's tokens: rows of several sequences, each sequence's rows contiguous with
// consecutive positions (a prefill chunk or one decode token), plus which rows need logits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace shardlm {

struct SequenceSegment {
  int seq = 0;              // KV-cache sequence slot
  int32_t first_row = 0;    // first row of this sequence in the batch
  int32_t rows = 0;         // number of rows (tokens)
  int32_t first_position = 0;
};

struct StepBatch {
  std::vector<int32_t> tokens;
  std::vector<int32_t> positions;  // per row
  std::vector<SequenceSegment> segments;
  std::vector<int32_t> logit_rows;  // rows whose logits are wanted, ascending

  // Appends a run of tokens of one sequence starting at first_position.
  void add(int seq, int32_t first_position, const std::vector<int32_t>& ids, bool all_logits, bool last_logits);
  int32_t size() const { return static_cast<int32_t>(tokens.size()); }
};

}  // namespace shardlm
