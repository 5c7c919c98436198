// The model generator: generated tiny models load and validate, bytes are deterministic for a seed,
// sharded and single-file outputs hold the same values, values follow the PRNG and the init rules,
// and the synthetic tokenizer has the Gemma 4 special ids and exactly vocab_size entries.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/half.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/generator.h"
#include "model/synthetic_tokenizer.h"
#include "model/tensor_names.h"
#include "model/tokenizer.h"
#include "model/variants.h"

namespace shardlm {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() / ("shardlm_generator_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
    fs::remove_all(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string str() const { return path_.string(); }
  fs::path operator/(const std::string& s) const { return path_ / s; }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  EXPECT_TRUE(in.good()) << p;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

GeneratedModel make(const TempDir& dir, const std::string& variant, uint64_t seed = 1, DType dtype = DType::kBF16,
                    int64_t shard_mb = 0, int threads = 2) {
  GeneratorOptions o;
  o.variant = variant;
  o.seed = seed;
  o.dtype = dtype;
  o.shard_mb = shard_mb;
  o.threads = threads;
  return generate_model(dir.str(), o);
}

TEST(Generator, TinyModelsLoadAndValidate) {
  for (const char* variant : {"tiny-dense", "tiny-moe", "tiny-edge"}) {
    SCOPED_TRACE(variant);
    TempDir dir;
    GeneratedModel m = make(dir, variant);
    EXPECT_EQ(m.weight_files, std::vector<std::string>({"model.safetensors"}));
    ModelConfig c = load_model_config(dir.str());
    EXPECT_EQ(c.variant, variant);
    EXPECT_EQ(c.eos_token_ids, std::vector<int>({1, 106, 50}));
    EXPECT_TRUE(c == m.config);
    ModelConfig table = variant_config(variant);
    EXPECT_EQ(c.layers, table.layers);
    Checkpoint ck = Checkpoint::open(dir.str());
    EXPECT_EQ(validate_checkpoint_tensors(ck, c), 0);
    EXPECT_EQ(ck.names().size(), expected_tensors(c).size());
    for (const std::string& n : ck.names()) EXPECT_EQ(ck.info(n).dtype, DType::kBF16) << n;
    EXPECT_EQ(m.parameters, c.parameter_count());
    EXPECT_EQ(m.weight_bytes, static_cast<uint64_t>(c.parameter_count()) * 2);
    for (const char* f : {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                          "special_tokens_map.json"}) {
      EXPECT_TRUE(fs::is_regular_file(dir / f)) << f;
    }
    json gen = json::parse(read_file(dir / "generation_config.json"));
    EXPECT_EQ(gen["eos_token_id"], json({1, 106, 50}));
  }
}

TEST(Generator, SameSeedSameBytesDifferentSeedDifferentBytes) {
  TempDir a, b, c;
  make(a, "tiny-moe", 7, DType::kBF16, 0, 2);
  make(b, "tiny-moe", 7, DType::kBF16, 0, 1);  // thread count does not change the bytes
  make(c, "tiny-moe", 8);
  const std::string wa = read_file(a / "model.safetensors");
  EXPECT_EQ(wa, read_file(b / "model.safetensors"));
  EXPECT_EQ(read_file(a / "config.json"), read_file(b / "config.json"));
  EXPECT_EQ(read_file(a / "tokenizer.json"), read_file(b / "tokenizer.json"));
  const std::string wc = read_file(c / "model.safetensors");
  ASSERT_EQ(wa.size(), wc.size());
  EXPECT_NE(wa, wc);
  // Almost every element differs between seeds.
  Checkpoint ca = Checkpoint::open(a.str()), cc = Checkpoint::open(c.str());
  std::vector<float> x = ca.read_f32("model.language_model.layers.0.mlp.up_proj.weight");
  std::vector<float> y = cc.read_f32("model.language_model.layers.0.mlp.up_proj.weight");
  size_t same = 0;
  for (size_t i = 0; i < x.size(); ++i) same += x[i] == y[i];
  EXPECT_LT(same, x.size() / 50);
}

TEST(Generator, ShardedHoldsTheSameValuesAsSingleFile) {
  TempDir single, sharded;
  make(single, "tiny-edge", 3);
  GeneratedModel m = make(sharded, "tiny-edge", 3, DType::kBF16, 1);
  EXPECT_GT(m.weight_files.size(), 3u);
  EXPECT_TRUE(fs::is_regular_file(sharded / "model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(sharded / "model.safetensors"));
  for (const std::string& f : m.weight_files) EXPECT_LE(fs::file_size(sharded / f), 1000000u + 100000u) << f;
  Checkpoint a = Checkpoint::open(single.str()), b = Checkpoint::open(sharded.str());
  EXPECT_EQ(b.file_count(), static_cast<int>(m.weight_files.size()));
  ASSERT_EQ(a.names(), b.names());
  for (const std::string& n : a.names()) EXPECT_EQ(a.read_f32(n), b.read_f32(n)) << n;
  EXPECT_EQ(validate_checkpoint_tensors(b, load_model_config(sharded.str())), 0);
}

TEST(Generator, ValuesFollowThePrngAndDtype) {
  TempDir f32, bf16;
  make(f32, "tiny-dense", 5, DType::kF32);
  make(bf16, "tiny-dense", 5, DType::kBF16);
  ModelConfig c = load_model_config(f32.str());
  EXPECT_EQ(c.dtype, "float32");
  Checkpoint a = Checkpoint::open(f32.str()), b = Checkpoint::open(bf16.str());
  for (const ExpectedTensor& t : expected_tensors(c)) {
    std::vector<float> x = a.read_f32(t.name), y = b.read_f32(t.name);
    ASSERT_EQ(x.size(), y.size());
    const TensorInit init = tensor_init(c, t.name, t.shape);
    for (size_t i : {size_t{0}, size_t{1}, x.size() / 2 + 1, x.size() - 1}) {
      if (i >= x.size()) continue;
      EXPECT_EQ(x[i], generated_value(5, t.name, init, static_cast<int64_t>(i))) << t.name << "[" << i << "]";
    }
    for (size_t i = 0; i < x.size(); ++i) {
      ASSERT_EQ(f32_to_bf16(x[i]), f32_to_bf16(y[i])) << t.name << "[" << i << "]";
      ASSERT_EQ(y[i], bf16_to_f32(f32_to_bf16(x[i])));
    }
  }
}

// Mean and standard deviation of every tensor match its initialisation rule; norms and scalars keep
// their intended ranges.
TEST(Generator, TensorStatisticsMatchTheInitRules) {
  TempDir dir;
  make(dir, "tiny-moe", 11, DType::kF32);
  ModelConfig c = load_model_config(dir.str());
  Checkpoint ck = Checkpoint::open(dir.str());
  for (const ExpectedTensor& t : expected_tensors(c)) {
    std::vector<float> x = ck.read_f32(t.name);
    const TensorInit init = tensor_init(c, t.name, t.shape);
    double sum = 0, sq = 0;
    float lo = x[0], hi = x[0];
    for (float v : x) {
      ASSERT_TRUE(std::isfinite(v));
      sum += v;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    const double mean = sum / x.size();
    for (float v : x) sq += (v - mean) * (v - mean);
    const double sd = std::sqrt(sq / x.size());
    EXPECT_GE(lo, init.mean - init.half_width - 1e-6) << t.name;
    EXPECT_LE(hi, init.mean + init.half_width + 1e-6) << t.name;
    if (x.size() >= 1000) {
      const double want_sd = init.half_width / std::sqrt(3.0);
      EXPECT_NEAR(mean, init.mean, 4 * want_sd / std::sqrt(static_cast<double>(x.size())) + 1e-9) << t.name;
      EXPECT_NEAR(sd, want_sd, 0.05 * want_sd) << t.name;
    }
  }
  // The rules themselves (matrices 1/sqrt(in), embeddings 1/sqrt(H), norms ~1, scalar < 1).
  auto sd_of = [&](const std::string& n, std::vector<int64_t> shape) {
    return tensor_init(c, n, shape).half_width / std::sqrt(3.0);
  };
  EXPECT_NEAR(sd_of("model.language_model.layers.0.mlp.down_proj.weight", {256, 256}), 1.0 / 16, 1e-12);
  EXPECT_NEAR(sd_of("model.language_model.layers.0.experts.down_proj", {8, 256, 128}), 1.0 / std::sqrt(128.0), 1e-12);
  EXPECT_NEAR(sd_of("model.language_model.embed_tokens.weight", {512, 256}), 1.0 / 16, 1e-12);
  EXPECT_DOUBLE_EQ(tensor_init(c, "model.language_model.norm.weight", {256}).mean, 1.0);
  TensorInit scalar = tensor_init(c, "model.language_model.layers.0.layer_scalar", {1});
  EXPECT_LT(scalar.mean + scalar.half_width, 1.0);
  EXPECT_GT(scalar.mean - scalar.half_width, 0.5);
  // q_norm * k_norm weights make q.k have sd ~2 over head_dim 64: w^2 * sqrt(64) = 2.
  TensorInit qn = tensor_init(c, "model.language_model.layers.0.self_attn.q_norm.weight", {64});
  EXPECT_NEAR(qn.mean * qn.mean * 8, 2.0, 1e-9);
}

TEST(Generator, LayerCountAndErrors) {
  TempDir dir;
  GeneratorOptions o;
  o.variant = "tiny-edge";
  o.layers = 3;
  GeneratedModel m = generate_model(dir.str(), o);
  ModelConfig c = load_model_config(dir.str());
  EXPECT_EQ(c.num_layers, 3);
  EXPECT_EQ(c.layer_types.back(), LayerType::kFull);
  EXPECT_EQ(c.variant, "tiny-edge");
  EXPECT_EQ(describe_variant(c), "tiny-edge (3 of 7 layers)");
  EXPECT_EQ(validate_checkpoint_tensors(Checkpoint::open(dir.str()), c), 0);
  EXPECT_EQ(m.config.num_layers, 3);

  TempDir bad;
  GeneratorOptions unknown;
  unknown.variant = "gpt2";
  EXPECT_THROW(generate_model(bad.str(), unknown), Error);
  GeneratorOptions none;
  EXPECT_THROW(generate_model(bad.str(), none), Error);
}

TEST(Generator, CopiesAGivenTokenizer) {
  TempDir dir;
  GeneratorOptions o;
  o.variant = "tiny-dense";
  o.tokenizer_path = std::string(SHARDLM_TEST_DATA) + "/dense/tokenizer.json";
  GeneratedModel m = generate_model(dir.str(), o);
  EXPECT_EQ(m.tokenizer_vocab, 512);
  EXPECT_EQ(read_file(dir / "tokenizer.json"), read_file(o.tokenizer_path));
  EXPECT_EQ(read_file(dir / "tokenizer_config.json"),
            read_file(std::string(SHARDLM_TEST_DATA) + "/dense/tokenizer_config.json"));

  TempDir big;  // a tokenizer larger than the model's vocabulary is refused
  GeneratorOptions too_big;
  too_big.variant = "tiny-dense";
  const fs::path tok = big / "src" / "tokenizer.json";
  fs::create_directories(tok.parent_path());
  std::ofstream(tok) << synthetic_tokenizer_json(build_synthetic_tokenizer(600));
  too_big.tokenizer_path = tok.string();
  EXPECT_THROW(generate_model((big / "out").string(), too_big), Error);
}

TEST(SyntheticTokenizer, TinyVocabularyLayout) {
  SyntheticTokenizer t = build_synthetic_tokenizer(512);
  ASSERT_EQ(t.tokens.size(), 512u);
  const std::pair<int, const char*> ids[] = {{0, "<pad>"}, {1, "<eos>"}, {2, "<bos>"}, {3, "<unk>"}, {4, "<mask>"},
                                             {46, "<|tool>"}, {47, "<tool|>"}, {48, "<|tool_call>"},
                                             {49, "<tool_call|>"}, {50, "<|tool_response>"}, {51, "<tool_response|>"},
                                             {52, "<|\"|>"}, {98, "<|think|>"}, {100, "<|channel>"},
                                             {101, "<channel|>"}, {105, "<|turn>"}, {106, "<turn|>"}, {107, "\n"},
                                             {108, "<0x00>"}, {118, "<0x0A>"}, {363, "<0xFF>"}};
  for (const auto& [id, text] : ids) EXPECT_EQ(t.tokens[id], text) << id;
  EXPECT_EQ(t.tokens[5].rfind("<unused", 0), 0u);
  std::set<std::string> unique(t.tokens.begin(), t.tokens.end());
  EXPECT_EQ(unique.size(), t.tokens.size());
  EXPECT_GT(t.merges.size(), 50u);
  // Every merge result is a token.
  for (const auto& [a, b] : t.merges) EXPECT_TRUE(unique.count(a + b)) << a << " " << b;
  json doc = json::parse(synthetic_tokenizer_json(t));
  EXPECT_EQ(doc["model"]["vocab"].size(), 512u);
  EXPECT_EQ(doc["model"]["vocab"]["<turn|>"], 106);
  EXPECT_EQ(doc["model"]["vocab"]["\n"], 107);
  EXPECT_EQ(doc["pre_tokenizer"], nullptr);
  EXPECT_EQ(doc["model"]["byte_fallback"], true);
}

TEST(SyntheticTokenizer, FullVocabularyHasMultimodalIds) {
  SyntheticTokenizer t = build_synthetic_tokenizer(262144);
  ASSERT_EQ(t.tokens.size(), 262144u);
  EXPECT_EQ(t.tokens[255999], "<|image>");
  EXPECT_EQ(t.tokens[256000], "<|audio>");
  EXPECT_EQ(t.tokens[258880], "<|image|>");
  EXPECT_EQ(t.tokens[258881], "<|audio|>");
  EXPECT_EQ(t.tokens[258882], "<image|>");
  EXPECT_EQ(t.tokens[258883], "<audio|>");
  EXPECT_EQ(t.tokens[258884], "<|video|>");
  EXPECT_EQ(t.tokens[262143].rfind("<unused", 0), 0u);
  std::set<std::string> unique(t.tokens.begin(), t.tokens.end());
  EXPECT_EQ(unique.size(), t.tokens.size());
  // Merges stop when no pair of the corpus repeats: well below the vocabulary, above the tiny one's.
  EXPECT_GT(t.merges.size(), 300u);
  EXPECT_LT(t.merges.size(), 10000u);
  EXPECT_EQ(build_synthetic_tokenizer(258884).tokens[255999].rfind("<unused", 0), 0u);
  EXPECT_THROW(build_synthetic_tokenizer(300), Error);
}

TEST(SyntheticTokenizer, LoadsAndRoundTripsThroughTheTokenizer) {
  TempDir dir;
  make(dir, "tiny-dense");
  Tokenizer tok = Tokenizer::load(dir.str());
  EXPECT_EQ(tok.vocab_size(), 512);
  EXPECT_EQ(tok.bos_id(), 2);
  EXPECT_EQ(tok.eos_id(), 1);
  const std::string text = "The river ran quickly under the old stone bridge.\nZebras: 42!";
  std::vector<int32_t> ids = tok.encode(text);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids[0], 2);
  EXPECT_LT(ids.size(), text.size());  // merges were applied
  EXPECT_EQ(tok.decode(std::vector<int32_t>(ids.begin() + 1, ids.end())), text);
  std::vector<int32_t> turn = tok.encode("<|turn>user\nHi<turn|>", false);
  ASSERT_GE(turn.size(), 3u);
  EXPECT_EQ(turn.front(), 105);
  EXPECT_EQ(turn.back(), 106);
  EXPECT_NE(std::find(turn.begin(), turn.end(), 107), turn.end());  // "\n" is token 107

  // The full-size vocabulary: multimodal tokens at their real ids, text round trips.
  TempDir big;
  fs::create_directories(big / "t");
  std::ofstream(big / "t" / "tokenizer.json") << synthetic_tokenizer_json(build_synthetic_tokenizer(262144));
  Tokenizer full = Tokenizer::load((big / "t").string());
  EXPECT_EQ(full.vocab_size(), 262144);
  std::vector<int32_t> mm = full.encode("<|image><|image|><image|> and the river", false);
  ASSERT_GE(mm.size(), 4u);
  EXPECT_EQ(mm[0], 255999);
  EXPECT_EQ(mm[1], 258880);
  EXPECT_EQ(mm[2], 258882);
  std::vector<int32_t> words = full.encode(text, false);
  EXPECT_LT(words.size() + 1, ids.size());  // more merges than the 512-entry vocabulary (ids has BOS)
  EXPECT_EQ(full.decode(words), text);
}

}  // namespace
}  // namespace shardlm
