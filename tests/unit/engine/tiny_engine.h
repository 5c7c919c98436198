// The engine the scheduler and text service tests run on: the golden tiny dense model in one process.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "engine/engine.h"

namespace shardlm {

inline const std::string kTinyModel = std::string(SHARDLM_TEST_DATA) + "/dense";

inline std::unique_ptr<StepEngine> open_tiny(int max_sequences, int64_t kv_tokens = 4096) {
  EngineOptions o;
  o.model_dir = kTinyModel;
  o.max_sequences = max_sequences;
  o.kv_tokens = kv_tokens;
  o.max_context = 1024;
  o.max_chunk = 64;
  return open_engine(o);
}

}  // namespace shardlm
