// Access to the golden checkpoints and prompts in tests/data for the engine tests, and running a
// prompt through a ModelRunner in chunks.
#pragma once

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "worker/model_runner.h"

namespace shardlm::golden {

inline std::string golden_dir(const std::string& model) { return std::string(SHARDLM_TEST_DATA) + "/" + model; }

// A comma-separated line of token ids (tokens.txt, tokens_long.txt).
inline std::vector<int32_t> read_golden_tokens(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::vector<int32_t> ids;
  std::string item;
  while (std::getline(ss, item, ',')) ids.push_back(std::stoi(item));
  return ids;
}

// Small KV blocks and chunks: many block boundaries and sliding-ring reuse on the golden prompts.
inline RunnerOptions small_runner_options(size_t tokens) {
  RunnerOptions ro;
  ro.kv.block_size = 4;
  ro.kv.max_chunk = 32;
  ro.kv.full_capacity_tokens = static_cast<int64_t>(tokens);
  return ro;
}

// Feeds the tokens through the runner `chunk` at a time; returns [T, owned vocab] logits.
inline std::vector<float> run_chunked(ModelRunner& runner, const std::vector<int32_t>& ids, int chunk,
                                      const TraceFn& trace = {}) {
  const int64_t vocab = runner.shard().vocab_rows.size();
  const int seq = runner.kv_cache().allocate_sequence();
  std::vector<float> all(ids.size() * vocab), part;
  for (size_t b = 0; b < ids.size(); b += chunk) {
    const size_t e = std::min(ids.size(), b + chunk);
    StepBatch batch;
    batch.add(seq, static_cast<int32_t>(b), std::vector<int32_t>(ids.begin() + b, ids.begin() + e), true, false);
    runner.forward(batch, part, trace);
    std::copy(part.begin(), part.end(), all.begin() + b * vocab);
  }
  return all;
}

}  // namespace shardlm::golden
