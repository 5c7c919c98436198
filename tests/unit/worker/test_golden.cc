// The engine against the golden reference logits and hidden states (tests/data, computed by an
// independent f32 implementation): max|Δ| / max|ref| <= 1e-3 and the same top-1 at every position,
// with the prompt fed in one chunk, in chunks of 7 and one token at a time.
#include <gtest/gtest.h>

#include <cmath>

#include "common/npy.h"
#include "tests/unit/worker/golden_data.h"
#include "model/config.h"
#include "worker/model_runner.h"

namespace shardlm {
namespace {

using golden::golden_dir;
using golden::read_golden_tokens;

struct Comparison {
  double rel = 0;
  int top1_mismatches = 0;
};

Comparison compare(const std::vector<float>& got, const NpyArray& ref, int64_t rows, int64_t cols) {
  Comparison c;
  double max_ref = 0, max_diff = 0;
  for (size_t i = 0; i < ref.data.size(); ++i) {
    max_ref = std::max(max_ref, std::fabs(static_cast<double>(ref.data[i])));
    max_diff = std::max(max_diff, std::fabs(static_cast<double>(got[i]) - ref.data[i]));
  }
  c.rel = max_diff / max_ref;
  for (int64_t r = 0; r < rows; ++r) {
    const float* g = got.data() + r * cols;
    const float* e = ref.data.data() + r * cols;
    if (std::max_element(g, g + cols) - g != std::max_element(e, e + cols) - e) ++c.top1_mismatches;
  }
  return c;
}

std::vector<float> run_logits(const std::string& model, const std::vector<int32_t>& ids, int chunk, TraceFn trace = {}) {
  ModelConfig config = load_model_config(golden_dir(model));
  auto ckpt = std::make_shared<Checkpoint>(Checkpoint::open(golden_dir(model)));
  ShardSpec shard = full_shard(config);
  ModelRunner runner(config, ckpt, shard, golden::small_runner_options(ids.size()));
  return golden::run_chunked(runner, ids, chunk, trace);
}

struct Case {
  std::string model;
  std::string prompt;  // "" or "_long"
};

class GoldenLogits : public ::testing::TestWithParam<std::tuple<Case, int>> {};

TEST_P(GoldenLogits, MatchesReference) {
  const auto& [c, chunk_param] = GetParam();
  const std::string dir = golden_dir(c.model);
  const std::vector<int32_t> ids = read_golden_tokens(dir + "/tokens" + c.prompt + ".txt");
  const NpyArray ref = read_npy(dir + "/logits" + c.prompt + ".npy");
  ASSERT_EQ(ref.shape[0], static_cast<int64_t>(ids.size()));
  const int chunk = chunk_param == 0 ? static_cast<int>(ids.size()) : chunk_param;
  const std::vector<float> got = run_logits(c.model, ids, chunk);
  ASSERT_EQ(got.size(), ref.data.size());
  const Comparison cmp = compare(got, ref, ref.shape[0], ref.shape[1]);
  std::printf("%s%s chunk %d: rel %.3g, top-1 mismatches %d\n", c.model.c_str(), c.prompt.c_str(), chunk, cmp.rel,
              cmp.top1_mismatches);
  EXPECT_LE(cmp.rel, 1e-3);
  EXPECT_EQ(cmp.top1_mismatches, 0);
}

INSTANTIATE_TEST_SUITE_P(
    AllModels, GoldenLogits,
    ::testing::Combine(::testing::Values(Case{"dense", ""}, Case{"dense", "_long"}, Case{"moe", ""},
                                         Case{"moe", "_long"}, Case{"edge", ""}, Case{"edge", "_long"},
                                         Case{"dense-f32-sharded", ""}),
                       ::testing::Values(0, 7, 1)),
    [](const auto& info) {
      std::string name = std::get<0>(info.param).model + std::get<0>(info.param).prompt + "_chunk" +
                         std::to_string(std::get<1>(info.param));
      for (char& ch : name) {
        if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
      }
      return name;
    });

// Per-layer hidden states: hidden[0] = scaled embedding, hidden[i+1] = residual after layer i.
TEST(GoldenHidden, EveryLayerMatches) {
  for (const std::string model : {"dense", "moe", "edge"}) {
    const std::string dir = golden_dir(model);
    const std::vector<int32_t> ids = read_golden_tokens(dir + "/tokens.txt");
    const NpyArray ref = read_npy(dir + "/hidden.npy");
    const int64_t layers = ref.shape[0] - 1, T = ref.shape[1], H = ref.shape[2];
    std::vector<std::vector<float>> got(layers + 1);
    run_logits(model, ids, static_cast<int>(ids.size()), [&](const std::string& name, const float* d, int64_t r, int64_t c) {
      int index = -1;
      if (name == "embed") index = 0;
      if (name.size() > 4 && name[0] == 'L' && name.substr(name.size() - 4) == ".out") index = std::stoi(name.substr(1)) + 1;
      if (index >= 0) got[index].assign(d, d + r * c);
    });
    for (int64_t i = 0; i <= layers; ++i) {
      ASSERT_EQ(static_cast<int64_t>(got[i].size()), T * H) << model << " hidden " << i;
      double max_ref = 0, max_diff = 0;
      for (int64_t j = 0; j < T * H; ++j) {
        const float e = ref.data[i * T * H + j];
        max_ref = std::max(max_ref, std::fabs(static_cast<double>(e)));
        max_diff = std::max(max_diff, std::fabs(static_cast<double>(got[i][j]) - e));
      }
      EXPECT_LE(max_diff / max_ref, 1e-3) << model << " hidden state " << i;
    }
  }
}

// The LM head is packed in chunks of vocabulary rows (16384 by default: one chunk for the golden
// models' 512, sixteen for Gemma 4's 262144). In chunks of 100 rows (six, the last of 12) the logits
// are the same, bit for bit, for one logits row per step and for several, with the checkpoint's
// precision and with q4 weights (whose embedding rows are read from the packed LM head).
TEST(LmHeadChunks, ChunkedVocabularyGivesTheSameLogits) {
  const std::string dir = golden_dir("dense");
  const std::vector<int32_t> ids = read_golden_tokens(dir + "/tokens.txt");
  ModelConfig config = load_model_config(dir);
  auto ckpt = std::make_shared<Checkpoint>(Checkpoint::open(dir));
  for (bool q4 : {false, true}) {
    for (int chunk : {1, 7}) {
      std::vector<float> logits[2];
      for (int split = 0; split < 2; ++split) {
        RunnerOptions ro = golden::small_runner_options(ids.size());
        if (q4) ro.weights.format = WeightFormat::kQ4;
        if (split == 1) ro.weights.lm_head_chunk_rows = 100;
        ModelRunner runner(config, ckpt, full_shard(config), ro);
        logits[split] = golden::run_chunked(runner, ids, chunk);
      }
      ASSERT_EQ(logits[0].size(), ids.size() * static_cast<size_t>(config.vocab_size));
      ASSERT_EQ(logits[1].size(), logits[0].size());
      for (size_t i = 0; i < logits[0].size(); ++i) {
        ASSERT_EQ(logits[1][i], logits[0][i]) << "logit " << i << (q4 ? ", q4" : "") << ", steps of " << chunk;
      }
    }
  }
}

}  // namespace
}  // namespace shardlm
