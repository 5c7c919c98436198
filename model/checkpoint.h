// A checkpoint folder: a single model.safetensors or shards listed in model.safetensors.index.json.
// Gives tensors by name and reads any rectangle (rows a..b, columns c..d) of a tensor viewed as 2-D,
// converted to f32 — the API a worker uses to read only its slice.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/safetensors.h"

namespace shardlm {

// A 2-D view of a tensor: rows = product of all but the last dimension, cols = last dimension.
struct Range {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
};

// Rows and columns of a tensor's 2-D view.
struct View2D {
  int64_t rows = 0;
  int64_t cols = 0;
};

// One contiguous byte range of a file (what a shard needs to read).
struct ByteRange {
  int file_index = 0;
  uint64_t begin = 0;
  uint64_t end = 0;
};

class Checkpoint {
 public:
  // Opens DIR (or a single .safetensors file). Validates every header and the index.
  static Checkpoint open(const std::string& path);
  // A checkpoint without files: every tensor of `config` (tensor_names.h) holding the values
  // `shardlm mkmodel` writes for this seed and dtype (generator.h), computed when read. Lets workers
  // build real-size weights in memory without a checkpoint on disk. Has no bytes: raw(),
  // byte_ranges() and file_index() throw.
  static Checkpoint synthetic(const ModelConfig& config, uint64_t seed = 1, DType dtype = DType::kBF16);
  bool is_synthetic() const;

  Checkpoint(Checkpoint&&) noexcept;
  Checkpoint& operator=(Checkpoint&&) noexcept;
  ~Checkpoint();

  const std::string& path() const;
  bool has(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;  // throws Error naming a missing tensor
  std::vector<std::string> names() const;                 // sorted
  int file_count() const;
  const std::string& file_path(int file_index) const;

  // Copies rows [rows.begin, rows.end) x cols [cols.begin, cols.end) of the tensor (viewed as
  // [rows, cols] as above) into out (row-major, rows.size() x cols.size()) as f32.
  void read_f32(const std::string& name, Range rows, Range cols, float* out) const;
  // Whole tensor as f32.
  std::vector<float> read_f32(const std::string& name) const;
  // Byte ranges of the file(s) that the rectangle touches (merged where contiguous).
  std::vector<ByteRange> byte_ranges(const std::string& name, Range rows, Range cols) const;
  // Raw pointer into the mapping and the tensor's file index.
  const uint8_t* raw(const std::string& name) const;
  int file_index(const std::string& name) const;
  // The [rows, cols] view of a tensor described above (0-D: [1, 1]; 1-D [n]: [1, n]).
  View2D view(const std::string& name) const;

 private:
  Checkpoint();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shardlm
