// Checkpoint::synthetic: every tensor and every rectangle of it equals what the generator writes to
// disk for the same variant, seed and dtype (so in-memory synthetic weights are the weights of
// `shardlm mkmodel`), and the file-only accessors refuse clearly.
#include <filesystem>
#include <string>
#include <vector>

#include <unistd.h>

#include <gtest/gtest.h>

#include "common/error.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/generator.h"
#include "model/tensor_names.h"
#include "model/variants.h"

namespace shardlm {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() : path_(fs::temp_directory_path() / ("shardlm_synthetic_" + std::to_string(::getpid()))) { fs::remove_all(path_); }
  ~TempDir() { fs::remove_all(path_); }
  std::string str() const { return path_.string(); }

 private:
  fs::path path_;
};

TEST(SyntheticCheckpoint, EqualsTheGeneratedFiles) {
  for (const DType dtype : {DType::kBF16, DType::kF32}) {
    for (const char* variant : {"tiny-dense", "tiny-moe", "tiny-edge"}) {
      SCOPED_TRACE(std::string(variant) + (dtype == DType::kBF16 ? " bf16" : " f32"));
      TempDir dir;
      GeneratorOptions o;
      o.variant = variant;
      o.seed = 7;
      o.dtype = dtype;
      generate_model(dir.str(), o);
      const Checkpoint disk = Checkpoint::open(dir.str());
      const ModelConfig config = load_model_config(dir.str());
      const Checkpoint mem = Checkpoint::synthetic(config, 7, dtype);
      EXPECT_TRUE(mem.is_synthetic());
      EXPECT_FALSE(disk.is_synthetic());
      EXPECT_EQ(mem.names(), disk.names());
      for (const std::string& name : disk.names()) {
        EXPECT_EQ(mem.info(name).shape, disk.info(name).shape) << name;
        EXPECT_EQ(mem.info(name).dtype, dtype) << name;
        const View2D v = disk.view(name);
        ASSERT_EQ(mem.read_f32(name), disk.read_f32(name)) << name;
        // A rectangle in the middle (odd offsets) as a worker reads its slice.
        if (v.rows >= 3 && v.cols >= 5) {
          const Range rows{1, v.rows - 1}, cols{3, v.cols - 1};
          std::vector<float> a(static_cast<size_t>(rows.size() * cols.size())), b(a.size());
          mem.read_f32(name, rows, cols, a.data());
          disk.read_f32(name, rows, cols, b.data());
          ASSERT_EQ(a, b) << name;
        }
      }
    }
  }
}

TEST(SyntheticCheckpoint, RealShapesWithoutAllocatingThem) {
  const ModelConfig config = variant_with_layers("31b", 2);
  const Checkpoint mem = Checkpoint::synthetic(config);
  const std::string embed = model_tensor_name(config, "embed_tokens.weight");
  EXPECT_EQ(mem.info(embed).shape, std::vector<int64_t>({config.vocab_size, config.hidden_size}));
  std::vector<float> row(static_cast<size_t>(config.hidden_size));
  mem.read_f32(embed, {262143, 262144}, {0, config.hidden_size}, row.data());
  bool nonzero = false;
  for (float v : row) nonzero = nonzero || v != 0.0f;
  EXPECT_TRUE(nonzero);
  EXPECT_THROW(mem.raw(embed), Error);
  EXPECT_THROW(mem.byte_ranges(embed, {0, 1}, {0, 4}), Error);
  EXPECT_THROW(mem.file_index(embed), Error);
  EXPECT_THROW(mem.info("no.such.tensor"), Error);
  EXPECT_THROW(mem.read_f32(embed, {0, 1}, {0, config.hidden_size + 1}, row.data()), Error);
}

}  // namespace
}  // namespace shardlm
