#include "worker/worker_loop.h"

#include "common/error.h"
#include "proto/step_message.h"
#include "worker/comm_collectives.h"
#include "worker/model_runner.h"

namespace shardlm {

void run_worker_loop(comm::Communicator& world, comm::Communicator& workers, const ModelConfig& config,
                     std::shared_ptr<const Checkpoint> checkpoint, const ShardSpec& shard, const RunnerOptions& options) {
  CommCollectives coll(workers);
  std::unique_ptr<ModelRunner> runner;
  std::vector<float> logits;
  std::vector<uint8_t> payload, none;
  for (;;) {
    StepHeader h;
    comm::Request req = world.ibroadcast(&h, sizeof h, 0);
    world.wait(req);  // sleeps while idle
    check_step_header(h);
    payload.resize(static_cast<size_t>(h.payload_bytes));
    if (h.payload_bytes > 0) world.broadcast(payload.data(), payload.size(), 0);
    switch (static_cast<StepCommand>(h.command)) {
      case StepCommand::kInit: {
        RunnerOptions ro = options;
        ro.kv.full_capacity_tokens = h.arg;
        ro.kv.max_chunk = static_cast<int>(h.arg2);
        runner = std::make_unique<ModelRunner>(config, checkpoint, shard, ro, &coll);
        break;
      }
      case StepCommand::kNewSequence:
        if (!runner) fail("worker: sequence before init");
        runner->kv_cache().allocate_sequence();
        break;
      case StepCommand::kFreeSequence:
        if (runner) runner->kv_cache().release_sequence(static_cast<int>(h.arg));
        break;
      case StepCommand::kStep: {
        if (!runner) fail("worker: step before init");
        const StepBatch batch = decode_step_batch(payload);
        runner->forward(batch, logits);
        world.gatherv(logits.data(), logits.size() * sizeof(float), none, 0);
        break;
      }
      case StepCommand::kShutdown:
        return;
    }
  }
}

}  // namespace shardlm
