// The layer program split over 2..4 workers (ranks as threads, in-process communicator) by the
// planner's shards — tensor-parallel attention and MLP, expert-parallel MoE, vocabulary-parallel
// embedding and LM head — gives the single-process logits (<= 5e-4 relative, same top-1).
#include <gtest/gtest.h>

#include <cmath>
#include <mutex>

#include "comm/in_process.h"
#include "common/npy.h"
#include "tests/unit/worker/golden_data.h"
#include "partition/plan.h"
#include "worker/comm_collectives.h"
#include "worker/model_runner.h"
#include "worker/model_weights.h"

namespace shardlm {
namespace {

using golden::golden_dir;
using golden::read_golden_tokens;

class TensorParallel : public ::testing::TestWithParam<std::tuple<std::string, int>> {};

TEST_P(TensorParallel, MatchesSingleProcess) {
  const auto& [model, workers] = GetParam();
  const std::string dir = golden_dir(model);
  const ModelConfig config = load_model_config(dir);
  auto ckpt = std::make_shared<Checkpoint>(Checkpoint::open(dir));
  const std::vector<int32_t> ids = read_golden_tokens(dir + "/tokens_long.txt");
  const int64_t V = config.vocab_size;

  ModelRunner single(config, ckpt, full_shard(config), golden::small_runner_options(ids.size()));
  const std::vector<float> want = golden::run_chunked(single, ids, 7);

  PlanOptions po;
  po.num_workers = workers;
  po.context_tokens = static_cast<int64_t>(ids.size());
  const Plan plan = make_layout(config, po);
  std::vector<float> got(ids.size() * V, 0.0f);
  std::mutex mu;
  comm::run_in_process(workers, [&](comm::Communicator& c) {
    CommCollectives coll(c);
    const ShardSpec& shard = plan.workers[c.rank()].shard;
    ModelRunner runner(config, ckpt, shard, golden::small_runner_options(ids.size()), &coll);
    const std::vector<float> local = golden::run_chunked(runner, ids, 7);
    // One global KV head: the full-attention layers' positions are split over all the workers.
    if (config.num_global_kv_heads == 1) {
      EXPECT_EQ(runner.kv_cache().seq_count(), workers);
    }
    const int64_t n = shard.vocab_rows.size();
    std::lock_guard<std::mutex> lock(mu);
    for (size_t t = 0; t < ids.size(); ++t) {
      std::copy_n(local.data() + t * n, n, got.data() + t * V + shard.vocab_rows.begin);
    }
  });

  double max_ref = 0, max_diff = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    max_ref = std::max(max_ref, std::fabs(static_cast<double>(want[i])));
    max_diff = std::max(max_diff, std::fabs(static_cast<double>(got[i]) - want[i]));
  }
  int top1 = 0;
  for (size_t t = 0; t < ids.size(); ++t) {
    const float* a = want.data() + t * V;
    const float* b = got.data() + t * V;
    top1 += (std::max_element(a, a + V) - a) != (std::max_element(b, b + V) - b);
  }
  std::printf("%s on %d workers: rel %.3g, top-1 mismatches %d\n", model.c_str(), workers, max_diff / max_ref, top1);
  EXPECT_LE(max_diff / max_ref, 5e-4);
  EXPECT_EQ(top1, 0);
}

INSTANTIATE_TEST_SUITE_P(GoldenModels, TensorParallel,
                         ::testing::Combine(::testing::Values("dense", "moe", "edge"), ::testing::Values(2, 3, 4)),
                         [](const auto& info) {
                           return std::get<0>(info.param) + "_" + std::to_string(std::get<1>(info.param)) + "_workers";
                         });

// With int8 weights (one scale per row) the matrices whose columns are split over the workers (o_proj,
// mlp.down_proj) take each row's scale from the whole row: every worker's slice, dequantised, equals
// the same columns of the single-process matrix, so the quantised model does not depend on the
// worker count.
TEST(TensorParallelInt8, ColumnSplitMatricesKeepTheWholeRowsScales) {
  const std::string dir = golden_dir("dense");
  const ModelConfig config = load_model_config(dir);
  const Checkpoint ckpt = Checkpoint::open(dir);
  WeightLoadOptions wo;
  wo.format = WeightFormat::kInt8;
  const ModelWeights single = load_model_weights(ckpt, config, full_shard(config), wo);
  const int64_t H = config.hidden_size;
  // Row r of `slice` against columns [begin, begin + width) of the same row of `whole`.
  auto expect_slice = [&](const Linear& whole, const Linear& slice, int64_t begin, const std::string& what) {
    ASSERT_EQ(slice.out_features(), H) << what;
    std::vector<float> a(static_cast<size_t>(whole.in_features())), b(static_cast<size_t>(slice.in_features()));
    for (int64_t r = 0; r < H; ++r) {
      whole.read_row(r, a.data());
      slice.read_row(r, b.data());
      for (int64_t c = 0; c < slice.in_features(); ++c) {
        ASSERT_EQ(b[c], a[begin + c]) << what << " row " << r << " column " << begin + c;
      }
    }
  };
  for (int workers : {2, 3}) {
    PlanOptions po;
    po.num_workers = workers;
    po.context_tokens = 64;
    const Plan plan = make_layout(config, po);
    comm::run_in_process(workers, [&](comm::Communicator& c) {
      CommCollectives coll(c);
      const ShardSpec& shard = plan.workers[c.rank()].shard;
      const ModelWeights w = load_model_weights(ckpt, config, shard, wo, &coll);
      for (int l = 0; l < config.num_layers; ++l) {
        const LayerShard& s = shard.layers[l];
        const std::string at = std::to_string(workers) + " workers, worker " + std::to_string(c.rank()) + ", layer " + std::to_string(l);
        expect_slice(single.layers[l].attn.o, w.layers[l].attn.o, s.q_heads.begin * config.layers[l].head_dim, "o_proj, " + at);
        if (s.mlp_columns.size() > 0) {
          expect_slice(single.layers[l].mlp.down, w.layers[l].mlp.down, s.mlp_columns.begin, "down_proj, " + at);
        }
      }
    });
  }
}

}  // namespace
}  // namespace shardlm
