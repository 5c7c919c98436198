// Messages from the coordinator (rank 0) to the workers, one per iteration: a fixed-size header
// (version, command, arguments, payload size) broadcast first, then the payload, a serialised
// protobuf message of proto/step.proto (StepPlan for a step). A worker refuses a header of another
// version with an Error.
#pragma once

#include <cstdint>
#include <vector>

#include "proto/logit_candidates.h"
#include "proto/step_batch.h"

namespace shardlm {

inline constexpr uint32_t kStepProtocolVersion = 4;
// Replies travel point to point: each worker sends rank 0 a uint64 byte count and then the bytes,
// both with this tag, so that the coordinator can wait for each worker with a deadline.
inline constexpr int kReplyTag = 7001;
// Exit status of an MPI job ended because a rank was lost (a worker stopped answering, or the
// coordinator went silent): EX_TEMPFAIL, "run me again" for Slurm requeue, Kubernetes and supervisors.
inline constexpr int kWorkerLostExitCode = 75;

enum class StepCommand : uint32_t {
  kInit = 1,          // payload = InitParams; workers reply WorkerInfo (gather)
  kNewSequence = 2,   // every worker allocates the next KV sequence slot
  kFreeSequence = 3,  // arg = sequence slot
  kStep = 4,          // payload = StepPlan; workers reply StepResult (or logits slices)
  kShutdown = 5,
  kRowLogits = 6,     // arg = logits row of the last step; workers reply that row's vocabulary slice
  kPing = 7,          // heartbeat of an idle coordinator; workers reply with their WorkerStats
  kRowRanks = 8,      // payload = RankQuery on the last step's rows; workers reply RankCounts
};

struct StepHeader {
  uint32_t version = kStepProtocolVersion;
  uint32_t command = 0;
  int64_t arg = 0;
  int64_t arg2 = 0;
  int64_t payload_bytes = 0;
};
static_assert(sizeof(StepHeader) == 32);

// StepPlan <-> StepBatch + row requests.
std::vector<uint8_t> encode_step_plan(const StepBatch& batch, const std::vector<RowRequest>& rows, bool full_logits);
// Throws Error on malformed input (bad protobuf, inconsistent rows/segments).
StepBatch decode_step_plan(const std::vector<uint8_t>& bytes, std::vector<RowRequest>& rows, bool& full_logits);

// Throws Error when the header's version or command is not understood.
void check_step_header(const StepHeader& header);

}  // namespace shardlm
