// A worker rank's main loop: waits (idle, without busy-polling) for the coordinator's step
// messages on the world communicator, runs them on its shard, and sends back its logits slice.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "comm/communicator.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "partition/shard_spec.h"
#include "worker/model_runner.h"

namespace shardlm {

// What model a worker loaded (engine/model_identity.h), sent to the coordinator with its init reply.
struct ModelIdentity {
  std::string config;
  std::string weights;
};

// world: all ranks (coordinator = rank 0); workers: the workers-only communicator.
// options: weights and KV block size (capacity and chunk come with kInit). Returns on kShutdown.
// A worker that hears nothing from the coordinator for coordinator_timeout after init (an idle
// coordinator sends heartbeats) ends the MPI job with kWorkerLostExitCode.
void run_worker_loop(comm::Communicator& world, comm::Communicator& workers, const ModelConfig& config,
                     std::shared_ptr<const Checkpoint> checkpoint, const ShardSpec& shard, const RunnerOptions& options,
                     const ModelIdentity& identity,
                     std::chrono::milliseconds coordinator_timeout = std::chrono::milliseconds(300000));

}  // namespace shardlm
