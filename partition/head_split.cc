#include "partition/head_split.h"

#include "common/error.h"
#include "partition/even_split.h"

namespace shardlm {

std::vector<HeadShare> split_heads(int num_q_heads, int num_kv_heads, int workers, bool split_kv_by_sequence) {
  if (num_kv_heads < 1 || num_q_heads < 1 || num_q_heads % num_kv_heads != 0) {
    fail("attention: {} query heads cannot be grouped over {} KV heads", num_q_heads, num_kv_heads);
  }
  if (workers < 1) fail("attention: number of workers must be at least 1 (got {})", workers);
  if (workers > num_q_heads) {
    fail("attention: {} workers but only {} query heads per layer; at most {} workers can share a layer's heads",
         workers, num_q_heads, num_q_heads);
  }
  const int group = num_q_heads / num_kv_heads;
  std::vector<HeadShare> shares(workers);
  if (workers <= num_kv_heads) {
    // Whole groups: no KV head is needed by two workers.
    const std::vector<Range> groups = split_even(num_kv_heads, workers);
    for (int w = 0; w < workers; ++w) {
      shares[w].kv_heads = groups[w];
      shares[w].q_heads = {groups[w].begin * group, groups[w].end * group};
    }
    return shares;
  }
  // More workers than KV heads: KV head k is shared by sharers[k] consecutive workers, which split
  // its query heads among themselves.
  const std::vector<Range> sharers = split_even(workers, num_kv_heads);
  for (int k = 0; k < num_kv_heads; ++k) {
    const int count = static_cast<int>(sharers[k].size());
    const std::vector<Range> q = split_even(group, count);
    for (int j = 0; j < count; ++j) {
      HeadShare& s = shares[sharers[k].begin + j];
      s.kv_heads = {k, k + 1};
      s.q_heads = {static_cast<int64_t>(k) * group + q[j].begin, static_cast<int64_t>(k) * group + q[j].end};
      s.kv_sharers = count;
      if (split_kv_by_sequence) {
        s.kv_seq_index = j;
        s.kv_seq_count = count;
      }
    }
  }
  return shares;
}

}  // namespace shardlm
