// How one layer type's attention heads are dealt out: whole KV groups (a KV head with the query heads
// that use it) while there are at least as many KV heads as workers; beyond that, a group's query
// heads are split over several workers that all use the one KV head, and the KV of that head is either
// split by sequence among them (full-attention layers) or computed and cached by each (sliding layers).
#pragma once

#include <vector>

#include "model/checkpoint.h"

namespace shardlm {

struct HeadShare {
  Range q_heads;   // query heads owned
  Range kv_heads;  // KV heads those query heads use
  int kv_seq_index = 0;  // sequence split of the KV (see LayerShard)
  int kv_seq_count = 1;
  int kv_sharers = 1;    // workers whose query heads use the same single KV head (1 = sole owner)
};

// One share per worker. split_kv_by_sequence: workers sharing one KV head store disjoint position
// blocks of it (full layers); otherwise each stores all of it (sliding layers: duplicated KV).
// Throws Error when the head counts are inconsistent or workers outnumber query heads.
std::vector<HeadShare> split_heads(int num_q_heads, int num_kv_heads, int workers, bool split_kv_by_sequence);

}  // namespace shardlm
