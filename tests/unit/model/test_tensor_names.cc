// The expected-tensor list (gemma4.md 3.1) against the golden checkpoints and the released shapes, and
// validate_checkpoint_tensors on good, incomplete, mis-shaped and over-full checkpoints.
#include <filesystem>
#include <map>
#include <set>

#include <unistd.h>

#include <gtest/gtest.h>

#include "common/error.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "model/tensor_names.h"
#include "model/variants.h"

namespace shardlm {
namespace {

namespace fs = std::filesystem;

std::string golden_dir(const std::string& name) { return std::string(SHARDLM_TEST_DATA) + "/" + name; }

std::map<std::string, std::vector<int64_t>> expected_map(const ModelConfig& c) {
  std::map<std::string, std::vector<int64_t>> m;
  for (const ExpectedTensor& t : expected_tensors(c)) {
    EXPECT_TRUE(m.emplace(t.name, t.shape).second) << "duplicate " << t.name;
  }
  return m;
}

TEST(TensorNames, GoldenCheckpointsHoldExactlyTheExpectedTensors) {
  for (const char* name : {"dense", "moe", "edge", "dense-f32-sharded"}) {
    SCOPED_TRACE(name);
    ModelConfig c = load_model_config(golden_dir(name));
    Checkpoint ck = Checkpoint::open(golden_dir(name));
    auto expected = expected_map(c);
    const std::vector<std::string> list = ck.names();
    std::set<std::string> names(list.begin(), list.end());
    EXPECT_EQ(names.size(), expected.size());
    for (const auto& [n, shape] : expected) {
      ASSERT_TRUE(ck.has(n)) << n;
      EXPECT_EQ(ck.info(n).shape, shape) << n;
    }
    EXPECT_EQ(validate_checkpoint_tensors(ck, c), 0);
    int64_t stored = 0;
    for (const std::string& n : ck.names()) stored += ck.info(n).numel();
    EXPECT_EQ(c.parameter_count(), stored);
  }
}

TEST(TensorNames, Released31bShapes) {
  const ModelConfig& c = variant_config("31b");
  auto m = expected_map(c);
  const std::string p = "model.language_model.";
  EXPECT_EQ(m.at(p + "embed_tokens.weight"), std::vector<int64_t>({262144, 5376}));
  EXPECT_EQ(m.at(p + "layers.0.self_attn.q_proj.weight"), std::vector<int64_t>({8192, 5376}));
  EXPECT_EQ(m.at(p + "layers.0.self_attn.k_proj.weight"), std::vector<int64_t>({4096, 5376}));
  EXPECT_EQ(m.at(p + "layers.0.self_attn.v_proj.weight"), std::vector<int64_t>({4096, 5376}));
  EXPECT_EQ(m.at(p + "layers.0.self_attn.o_proj.weight"), std::vector<int64_t>({5376, 8192}));
  EXPECT_EQ(m.at(p + "layers.5.self_attn.q_proj.weight"), std::vector<int64_t>({16384, 5376}));
  EXPECT_EQ(m.at(p + "layers.5.self_attn.k_proj.weight"), std::vector<int64_t>({2048, 5376}));
  EXPECT_EQ(m.count(p + "layers.5.self_attn.v_proj.weight"), 0u);
  EXPECT_EQ(m.at(p + "layers.5.self_attn.o_proj.weight"), std::vector<int64_t>({5376, 16384}));
  EXPECT_EQ(m.at(p + "layers.5.self_attn.k_norm.weight"), std::vector<int64_t>({512}));
  EXPECT_EQ(m.at(p + "layers.59.mlp.down_proj.weight"), std::vector<int64_t>({5376, 21504}));
  EXPECT_EQ(m.at(p + "layers.59.layer_scalar"), std::vector<int64_t>({1}));
  EXPECT_EQ(m.count("lm_head.weight"), 0u);
  EXPECT_EQ(m.count(p + "layers.0.router.proj.weight"), 0u);
  // embed + norm, and per layer 14 tensors on sliding layers, 13 (no v_proj) on full layers.
  EXPECT_EQ(m.size(), 2u + 50 * 14 + 10 * 13);
}

TEST(TensorNames, Released26bExpertsAndE2bSharing) {
  auto m = expected_map(variant_config("26b-a4b"));
  const std::string p = "model.language_model.layers.3.";
  EXPECT_EQ(m.at(p + "experts.gate_up_proj"), std::vector<int64_t>({128, 1408, 2816}));
  EXPECT_EQ(m.at(p + "experts.down_proj"), std::vector<int64_t>({128, 2816, 704}));
  EXPECT_EQ(m.at(p + "router.proj.weight"), std::vector<int64_t>({128, 2816}));
  EXPECT_EQ(m.at(p + "router.scale"), std::vector<int64_t>({2816}));
  EXPECT_EQ(m.at(p + "router.per_expert_scale"), std::vector<int64_t>({128}));
  EXPECT_EQ(m.at(p + "mlp.gate_proj.weight"), std::vector<int64_t>({2112, 2816}));
  for (const char* n : {"pre_feedforward_layernorm_2.weight", "post_feedforward_layernorm_1.weight",
                        "post_feedforward_layernorm_2.weight"}) {
    EXPECT_EQ(m.at(p + n), std::vector<int64_t>({2816})) << n;
  }

  const ModelConfig& e2 = variant_config("e2b");
  auto e = expected_map(e2);
  const std::string q = "model.language_model.";
  EXPECT_EQ(e.at(q + "embed_tokens_per_layer.weight"), std::vector<int64_t>({262144, 35 * 256}));
  EXPECT_EQ(e.at(q + "per_layer_model_projection.weight"), std::vector<int64_t>({35 * 256, 1536}));
  EXPECT_EQ(e.at(q + "per_layer_projection_norm.weight"), std::vector<int64_t>({256}));
  EXPECT_EQ(e.at(q + "layers.4.self_attn.k_proj.weight"), std::vector<int64_t>({512, 1536}));  // full, own KV
  EXPECT_EQ(e.at(q + "layers.4.self_attn.v_proj.weight"), std::vector<int64_t>({512, 1536}));
  EXPECT_EQ(e.count(q + "layers.15.self_attn.k_proj.weight"), 0u);
  EXPECT_EQ(e.count(q + "layers.15.self_attn.v_proj.weight"), 0u);
  EXPECT_EQ(e.count(q + "layers.15.self_attn.k_norm.weight"), 0u);
  EXPECT_EQ(e.at(q + "layers.15.self_attn.q_norm.weight"), std::vector<int64_t>({256}));
  EXPECT_EQ(e.at(q + "layers.15.mlp.up_proj.weight"), std::vector<int64_t>({12288, 1536}));
  EXPECT_EQ(e.at(q + "layers.14.mlp.up_proj.weight"), std::vector<int64_t>({6144, 1536}));
  EXPECT_EQ(e.at(q + "layers.20.per_layer_input_gate.weight"), std::vector<int64_t>({256, 1536}));
  EXPECT_EQ(e.at(q + "layers.20.per_layer_projection.weight"), std::vector<int64_t>({1536, 256}));
  EXPECT_TRUE(is_known_extra_tensor(e2, q + "layers.15.self_attn.k_proj.weight"));
  EXPECT_FALSE(is_known_extra_tensor(e2, q + "layers.14.self_attn.k_proj.weight"));
}

TEST(TensorNames, PrefixAndUntiedHead) {
  ModelConfig c = variant_config("tiny-dense");
  c.architecture = "Gemma4ForCausalLM";
  c.tensor_prefix = "model.";
  c.tie_word_embeddings = false;
  auto m = expected_map(c);
  EXPECT_EQ(m.at("model.embed_tokens.weight"), std::vector<int64_t>({512, 256}));
  EXPECT_EQ(m.at("lm_head.weight"), std::vector<int64_t>({512, 256}));
  EXPECT_EQ(m.count("model.language_model.norm.weight"), 0u);
  EXPECT_FALSE(is_known_extra_tensor(c, "lm_head.weight"));
  EXPECT_TRUE(is_known_extra_tensor(variant_config("tiny-dense"), "lm_head.weight"));
  EXPECT_TRUE(is_known_extra_tensor(c, "model.vision_tower.encoder.layers.0.mlp.fc1.weight"));
  EXPECT_TRUE(is_known_extra_tensor(c, "model.embed_audio.embedding_projection.weight"));
  EXPECT_FALSE(is_known_extra_tensor(c, "model.something_else.weight"));
}

// Writes a checkpoint with the given tensors (zeros, F32) into dir/model.safetensors.
void write_checkpoint(const fs::path& dir, const std::vector<ExpectedTensor>& tensors) {
  fs::create_directories(dir);
  SafetensorsWriter w((dir / "model.safetensors").string());
  for (const ExpectedTensor& t : tensors) w.declare(t.name, DType::kF32, t.shape);
  w.begin_data();
  for (const ExpectedTensor& t : tensors) {
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    std::vector<float> zeros(static_cast<size_t>(n));
    w.append(zeros.data(), zeros.size() * sizeof(float));
  }
  w.finish();
}

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() / ("shardlm_tensor_names_" + std::to_string(::getpid()) + "_" +
                                         std::to_string(counter_++));
    fs::remove_all(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

std::string error_of(const Checkpoint& ck, const ModelConfig& c) {
  try {
    validate_checkpoint_tensors(ck, c);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(TensorNames, ValidateReportsMissingAndMisshapedTensors) {
  const ModelConfig& c = variant_config("tiny-moe");
  std::vector<ExpectedTensor> all = expected_tensors(c);

  TempDir missing;
  std::vector<ExpectedTensor> without = all;
  const std::string dropped = without[7].name;
  without.erase(without.begin() + 7);
  write_checkpoint(missing.path(), without);
  std::string err = error_of(Checkpoint::open(missing.path().string()), c);
  EXPECT_NE(err.find(dropped), std::string::npos) << err;
  EXPECT_NE(err.find("missing"), std::string::npos) << err;

  TempDir misshaped;
  std::vector<ExpectedTensor> wrong = all;
  ExpectedTensor* experts = nullptr;
  for (auto& t : wrong) {
    if (t.name == "model.language_model.layers.1.experts.down_proj") experts = &t;
  }
  ASSERT_NE(experts, nullptr);
  experts->shape = {8, 128, 256};  // transposed experts
  write_checkpoint(misshaped.path(), wrong);
  err = error_of(Checkpoint::open(misshaped.path().string()), c);
  EXPECT_NE(err.find("layers.1.experts.down_proj"), std::string::npos) << err;
  EXPECT_NE(err.find("[8, 128, 256]"), std::string::npos) << err;
  EXPECT_NE(err.find("[8, 256, 128]"), std::string::npos) << err;

  TempDir extras;
  std::vector<ExpectedTensor> more = all;
  more.push_back({"model.vision_tower.patch.weight", {4, 4}});
  more.push_back({"lm_head.weight", {512, 256}});
  more.push_back({"model.language_model.layers.0.mystery.weight", {3}});
  write_checkpoint(extras.path(), more);
  EXPECT_EQ(validate_checkpoint_tensors(Checkpoint::open(extras.path().string()), c), 1);

  // The dense golden checkpoint with its config switched to MoE: the router is missing.
  ModelConfig moe = variant_config("tiny-dense");
  moe.enable_moe = true;
  moe.num_experts = 8;
  moe.top_k_experts = 2;
  moe.moe_intermediate_size = 128;
  finalize_model_config(moe);
  err = error_of(Checkpoint::open(golden_dir("dense")), moe);
  EXPECT_NE(err.find("router.proj.weight"), std::string::npos) << err;
}

TEST(TensorNames, SharedLayerKvTensorsAreTolerated) {
  const ModelConfig& c = variant_config("tiny-edge");
  std::vector<ExpectedTensor> all = expected_tensors(c);
  all.push_back({"model.language_model.layers.5.self_attn.k_proj.weight", {64, 256}});
  all.push_back({"model.language_model.layers.5.self_attn.v_proj.weight", {64, 256}});
  all.push_back({"model.language_model.layers.6.self_attn.k_norm.weight", {128}});
  TempDir dir;
  write_checkpoint(dir.path(), all);
  EXPECT_EQ(validate_checkpoint_tensors(Checkpoint::open(dir.path().string()), c), 0);
}

}  // namespace
}  // namespace shardlm
