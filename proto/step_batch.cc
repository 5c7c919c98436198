#include "proto/step_batch.h"

namespace shardlm {

void StepBatch::add(int seq, int32_t first_position, const std::vector<int32_t>& ids, bool all_logits,
                    bool last_logits) {
  SequenceSegment s;
  s.seq = seq;
  s.first_row = size();
  s.rows = static_cast<int32_t>(ids.size());
  s.first_position = first_position;
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t row = size();
    tokens.push_back(ids[i]);
    positions.push_back(first_position + static_cast<int32_t>(i));
    if (all_logits || (last_logits && i + 1 == ids.size())) logit_rows.push_back(row);
  }
  segments.push_back(s);
}

}  // namespace shardlm
