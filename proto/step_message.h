// Messages from the coordinator (rank 0) to the workers, one per iteration: a fixed-size header
// (version, command, arguments, payload size) broadcast first, then the payload (a serialised
// StepBatch for a step). A worker refuses a header of another version with an Error.
#pragma once

#include <cstdint>
#include <vector>

#include "proto/step_batch.h"

namespace shardlm {

inline constexpr uint32_t kStepProtocolVersion = 1;

enum class StepCommand : uint32_t {
  kInit = 1,          // arg = KV capacity in positions (full-attention layers), arg2 = max chunk
  kNewSequence = 2,   // every worker allocates the next KV sequence slot
  kFreeSequence = 3,  // arg = sequence slot
  kStep = 4,          // payload = StepBatch; workers reply with their logits slice
  kShutdown = 5,
};

struct StepHeader {
  uint32_t version = kStepProtocolVersion;
  uint32_t command = 0;
  int64_t arg = 0;
  int64_t arg2 = 0;
  int64_t payload_bytes = 0;
};
static_assert(sizeof(StepHeader) == 32);

std::vector<uint8_t> encode_step_batch(const StepBatch& batch);
StepBatch decode_step_batch(const std::vector<uint8_t>& bytes);  // throws Error on malformed input

// Throws Error when the header's version or command is not understood.
void check_step_header(const StepHeader& header);

}  // namespace shardlm
