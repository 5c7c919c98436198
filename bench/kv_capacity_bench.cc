// Long-context capacity of one global-attention layer split over N workers: fills a real-width
// global layer's KV cache (synthetic K/V) to the full context across the workers of the plan (split
// by KV head, and by sequence once workers outnumber the KV heads), then runs decode steps. Prints
// the KV bytes each worker holds and each worker's attention time per step: the work of a step,
// and its memory, shrink as 1/N. The workers run one after another in this process, so each one's
// time is measured without the others competing for the cores.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "common/text_format.h"
#include "kernels/attention.h"
#include "model/variants.h"
#include "partition/head_split.h"
#include "partition/plan.h"
#include "worker/kv_cache.h"

using namespace shardlm;

namespace {

struct WorkerState {
  ShardSpec shard;
  std::unique_ptr<KvCache> kv;
  int seq = 0;
};

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("KV capacity of a global layer split over N workers");
  std::string variant = "31b";
  int64_t context = 262144;
  std::vector<int> worker_counts = {1, 2, 4, 8, 16};
  int steps = 3;
  std::string kv_dtype = "f32";
  app.add_option("--variant", variant, "31b or 26b-a4b");
  app.add_option("--kv-dtype", kv_dtype, "KV cache storage: f32 or bf16")->check(CLI::IsMember({"f32", "bf16"}));
  app.add_option("--context", context, "Positions held");
  app.add_option("--workers", worker_counts, "Worker counts")->delimiter(',');
  app.add_option("--steps", steps, "Decode steps measured");
  CLI11_PARSE(app, argc, argv);
  try {
    const ModelConfig config = variant_with_layers(variant, 1);  // one layer: the last one is global
    const LayerGeometry& g = config.layers[0];
    const int bs = 16;
    const KvDtype dtype = parse_kv_dtype(kv_dtype);
    std::printf("%s global layer: %d query heads, %d KV heads x %d, context %lld positions, %s KV\n", variant.c_str(),
                config.num_heads, g.num_kv_heads, g.head_dim, static_cast<long long>(context), kv_dtype_name(dtype));
    std::printf("%-8s %-22s %16s %16s %20s %14s\n", "workers", "split", "KV per worker", "KV all workers",
                "attention/step", "speed-up");
    double base = 0.0;
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (int N : worker_counts) {
      PlanOptions po;
      po.num_workers = N;
      po.context_tokens = context;
      po.kv_block = bs;
      po.kv_bytes_per_value = static_cast<int>(kv_dtype_bytes(dtype));
      const Plan plan = make_layout(config, po);
      KvCacheOptions ko;
      ko.block_size = bs;
      ko.full_capacity_tokens = context;
      ko.max_chunk = 4096;
      ko.max_sequences = 1;
      ko.dtype = dtype;
      std::vector<WorkerState> workers(N);
      int64_t total_bytes = 0, max_bytes = 0;
      const int64_t hd = g.head_dim;
      for (int w = 0; w < N; ++w) {
        WorkerState& ws = workers[w];
        ws.shard = plan.workers[w].shard;
        ws.kv = std::make_unique<KvCache>(config, ws.shard, ko);
        ws.seq = ws.kv->allocate_sequence();
        const int64_t nkv = ws.shard.layers[0].kv_heads.size();
        std::vector<float> row(static_cast<size_t>(nkv * hd));
        for (float& x : row) x = u(rng) * 0.1f;
        for (int64_t b = 0; b < context; b += ko.max_chunk) {
          const int32_t e = static_cast<int32_t>(std::min<int64_t>(context, b + ko.max_chunk));
          ws.kv->prepare(ws.seq, static_cast<int32_t>(b), e);
          for (int32_t p = static_cast<int32_t>(b); p < e; ++p) {
            if (!ws.kv->holds(0, p)) continue;
            row[p % row.size()] += 1e-3f;  // distinct keys
            ws.kv->write(0, ws.seq, p, row.data(), row.data());
          }
        }
        const int64_t bytes = static_cast<int64_t>(ws.kv->bytes());
        total_bytes += bytes;
        max_bytes = std::max(max_bytes, bytes);
      }
      // A decode step at position `context - 1`: every worker computes partial attention for the
      // query heads of its KV group over the blocks it holds; groups merge the partials.
      const int32_t pos = static_cast<int32_t>(context - 1);
      std::vector<double> worker_time(N, 1e30);
      const std::vector<HeadShare> shares = split_heads(config.num_heads, g.num_kv_heads, N, true);
      for (int s = 0; s < steps; ++s) {
        for (int w = 0; w < N; ++w) {
          WorkerState& ws = workers[w];
          const LayerShard& ls = ws.shard.layers[0];
          const int C = ws.kv->seq_count();
          const int first = w - ws.kv->seq_index();
          int64_t gq = 0;
          for (int j = 0; j < C; ++j) gq += shares[first + j].q_heads.size();
          const int64_t nkv = ls.kv_heads.size();
          std::vector<float> q(static_cast<size_t>(gq * hd));
          for (float& x : q) x = u(rng);
          std::vector<int32_t> kv_of_q(static_cast<size_t>(gq));
          for (int64_t h = 0; h < gq; ++h) kv_of_q[h] = static_cast<int32_t>(h * nkv / gq);
          AttentionShape shape;
          shape.n_q_heads = static_cast<int32_t>(gq);
          shape.n_kv_heads = static_cast<int32_t>(nkv);
          shape.head_dim = static_cast<int32_t>(hd);
          shape.kv_head_of_q = kv_of_q.data();
          std::vector<KvBlockView> views;
          std::vector<float> out(q.size()), lse(static_cast<size_t>(gq)), acc(q.size(), 0.0f),
              acc_lse(static_cast<size_t>(gq), -1e30f);
          const auto t0 = std::chrono::steady_clock::now();
          ws.kv->views(0, ws.seq, 0, pos, views);
          attention_partial(q.data(), 1, &pos, shape, views.data(), static_cast<int64_t>(views.size()), 0, 1.0f,
                            out.data(), lse.data());
          // The merge of C partials (the group's own partial stands in for the others' here).
          for (int j = 0; j < C; ++j) attention_merge(acc.data(), acc_lse.data(), out.data(), lse.data(), gq, hd);
          worker_time[w] = std::min(worker_time[w], seconds_since(t0));
        }
      }
      const double step = *std::max_element(worker_time.begin(), worker_time.end());
      if (N == worker_counts.front()) base = step;
      const LayerShard& l0 = workers[0].shard.layers[0];
      const std::string split = l0.kv_seq_count > 1
                                    ? fmt::format("KV head, seq 1/{}", l0.kv_seq_count)
                                    : fmt::format("{} KV head(s)", l0.kv_heads.size());
      std::printf("%-8d %-22s %16s %16s %17.1f ms %13.2fx\n", N, split.c_str(), decimal_bytes(max_bytes).c_str(),
                  decimal_bytes(total_bytes).c_str(), step * 1e3, base / step);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shardlm_bench_kv_capacity: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
