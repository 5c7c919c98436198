#include "worker/worker_loop.h"

#include <chrono>
#include <cmath>

#include <spdlog/spdlog.h>

#include "common/error.h"
#include "proto/step.pb.h"
#include "proto/step_message.h"
#include "worker/comm_collectives.h"
#include "worker/model_runner.h"
#include "worker/process_memory.h"
#include "worker/step_candidates.h"

namespace shardlm {
namespace {

std::vector<uint8_t> serialize(const google::protobuf::MessageLite& m) {
  std::vector<uint8_t> out(m.ByteSizeLong());
  if (!m.SerializeToArray(out.data(), static_cast<int>(out.size()))) fail("worker: reply serialisation failed");
  return out;
}

void fill_stats(ModelRunner& runner, CommCollectives& coll, double step_s, step::WorkerStats& stats) {
  const CollectiveCounters c = coll.take_counters();
  stats.set_comm_s(c.seconds);
  stats.set_compute_s(std::max(0.0, step_s - c.seconds));
  stats.set_allreduce_count(c.count);
  stats.set_allreduce_bytes(c.bytes);
  const KvCache& kv = runner.kv_cache();
  stats.set_kv_full_free(kv.full_blocks_free());
  stats.set_kv_full_used(kv.full_blocks_total() - kv.full_blocks_free());
  stats.set_kv_sliding_used(kv.sliding_blocks_used());
  stats.set_kv_sliding_free(kv.sliding_blocks_total() - kv.sliding_blocks_used());
  stats.set_rss_bytes(resident_bytes());
  stats.set_weight_bytes(static_cast<int64_t>(runner.weights().bytes()));
  const std::vector<int64_t>& routed = runner.take_expert_tokens();
  for (size_t i = 0; i < routed.size(); ++i) {
    if (routed[i] == 0) continue;
    stats.add_expert_ids(static_cast<int32_t>(i));
    stats.add_expert_tokens(routed[i]);
  }
}

// A reply to the coordinator (proto/step_message.h: byte count, then the bytes).
void send_reply(comm::Communicator& world, const void* data, size_t bytes) {
  const uint64_t n = bytes;
  world.send(&n, sizeof n, 0, kReplyTag);
  if (bytes > 0) world.send(data, bytes, 0, kReplyTag);
}

}  // namespace

void run_worker_loop(comm::Communicator& world, comm::Communicator& workers, const ModelConfig& config,
                     std::shared_ptr<const Checkpoint> checkpoint, const ShardSpec& shard, const RunnerOptions& options,
                     const ModelIdentity& identity, std::chrono::milliseconds coordinator_timeout) {
  CommCollectives coll(workers);
  std::unique_ptr<ModelRunner> runner;
  std::vector<float> logits;
  std::vector<uint8_t> payload;
  std::vector<RowRequest> rows;
  const int64_t slice = shard.vocab_rows.size();
  for (;;) {
    StepHeader h;
    comm::Request req = world.ibroadcast(&h, sizeof h, 0);
    // Sleeps while idle. An idle coordinator sends a heartbeat every few seconds, so a silence
    // longer than the timeout means it is gone: end the job (the launcher restarts it).
    comm::WaitPolicy idle = comm::WaitPolicy::idle();
    if (runner) idle.timeout = coordinator_timeout;
    try {
      world.wait(req, idle);
    } catch (const Error& e) {
      spdlog::error("worker {}: no message from the coordinator: {}", world.rank(), e.what());
      world.abort(fmt::format("worker {} heard nothing from the coordinator for {:.0f} s; the coordinator is gone",
                              world.rank(), std::chrono::duration<double>(coordinator_timeout).count()),
                  kWorkerLostExitCode);
    }
    check_step_header(h);
    payload.resize(static_cast<size_t>(h.payload_bytes));
    if (h.payload_bytes > 0) {
      comm::Request body = world.ibroadcast(payload.data(), payload.size(), 0);
      world.wait(body);
    }
    switch (static_cast<StepCommand>(h.command)) {
      case StepCommand::kInit: {
        step::InitParams init;
        if (!init.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) fail("worker: malformed InitParams");
        RunnerOptions ro = options;
        ro.kv.full_capacity_tokens = init.kv_tokens();
        ro.kv.max_chunk = init.max_chunk();
        ro.kv.max_sequences = init.max_sequences();
        runner.reset();
        runner = std::make_unique<ModelRunner>(config, checkpoint, shard, ro, &coll);
        step::WorkerInfo info;
        info.set_weight_bytes(static_cast<int64_t>(runner->weights().bytes()));
        info.set_expert_weight_bytes(static_cast<int64_t>(runner->weights().expert_bytes()));
        info.set_kv_bytes(static_cast<int64_t>(runner->kv_cache().bytes()));
        info.set_rss_bytes(resident_bytes());
        info.set_peak_rss_bytes(peak_resident_bytes());
        info.set_kv_full_blocks(runner->kv_cache().full_blocks_total());
        info.set_kv_block(runner->kv_cache().block_size());
        info.set_config_fingerprint(identity.config);
        info.set_weights_fingerprint(identity.weights);
        const std::vector<uint8_t> reply = serialize(info);
        send_reply(world, reply.data(), reply.size());
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
        bool full = false;
        const StepBatch batch = decode_step_plan(payload, rows, full);
        const auto t0 = std::chrono::steady_clock::now();
        runner->forward(batch, logits);
        if (full) {
          send_reply(world, logits.data(), logits.size() * sizeof(float));
          coll.take_counters();
          runner->take_expert_tokens();
          break;
        }
        step::StepResult result;
        const std::vector<RowCandidates> candidates = select_step_candidates(logits.data(), slice, shard.vocab_rows.begin, rows);
        for (const RowCandidates& c : candidates) {
          step::Candidates* m = result.add_rows();
          for (const TokenLogit& t : c.top) {
            m->add_logits(t.logit);
            m->add_tokens(t.token);
          }
          m->set_bound(c.bound);
          m->set_lse(c.lse);
          m->set_lse_t_rel(c.lse_t_rel);
          if (!std::isnan(c.target_logit)) m->set_target_logit(c.target_logit);
        }
        const double step_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        fill_stats(*runner, coll, step_s, *result.mutable_stats());
        const std::vector<uint8_t> reply = serialize(result);
        send_reply(world, reply.data(), reply.size());
        break;
      }
      case StepCommand::kRowLogits: {
        const int64_t r = h.arg;
        const int64_t rows_held = slice > 0 ? static_cast<int64_t>(logits.size()) / slice : 0;
        if (r < 0 || r >= rows_held) fail("worker: logits row {} requested, the last step had {}", r, rows_held);
        send_reply(world, logits.data() + r * slice, static_cast<size_t>(slice) * sizeof(float));
        break;
      }
      case StepCommand::kRowRanks: {
        step::RankQuery query;
        if (!query.ParseFromArray(payload.data(), static_cast<int>(payload.size())) || query.rows_size() != query.values_size()) {
          fail("worker: malformed row rank query");
        }
        const int64_t rows_held = slice > 0 ? static_cast<int64_t>(logits.size()) / slice : 0;
        step::RankCounts counts;
        for (int i = 0; i < query.rows_size(); ++i) {
          const int64_t r = query.rows(i);
          if (r < 0 || r >= rows_held) fail("worker: logits row {} ranked, the last step had {}", r, rows_held);
          counts.add_counts(count_at_least(logits.data() + r * slice, slice, query.values(i)));
        }
        const std::vector<uint8_t> reply = serialize(counts);
        send_reply(world, reply.data(), reply.size());
        break;
      }
      case StepCommand::kPing: {
        // The heartbeat's answer: this worker's state now (KV blocks, memory), no step figures.
        step::WorkerStats stats;
        if (runner) fill_stats(*runner, coll, 0.0, stats);
        const std::vector<uint8_t> reply = serialize(stats);
        send_reply(world, reply.data(), reply.size());
        break;
      }
      case StepCommand::kShutdown:
        return;
    }
  }
}

}  // namespace shardlm
