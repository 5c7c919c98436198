// The checkpoint reads of a shard: every rectangle of every tensor (Hugging Face names, with the
// config's tensor prefix) a worker needs for the heads, columns, experts and vocabulary rows it owns,
// and the file byte ranges of such a rectangle.
#pragma once

#include <string>
#include <vector>

#include "model/checkpoint.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "partition/shard_spec.h"

namespace shardlm {

// A rectangle of a tensor viewed as 2-D [prod(shape[:-1]), shape[-1]] (as in model/checkpoint.h).
struct TensorSlice {
  std::string tensor;
  Range rows, cols;
  bool matrix = true;  // a weight matrix (stored in the plan's weight format); false: a vector kept in f32
  int64_t elements() const { return rows.size() * cols.size(); }
};

// The 2-D view [rows, cols] of a tensor of the model, derived from the config; throws Error for a
// name that is not a tensor the model reads.
struct TensorView {
  int64_t rows = 0;
  int64_t cols = 0;
};

// Every rectangle the shard reads, layer by layer, then the global tensors. Empty rectangles (a
// worker without MLP columns or experts) are left out; consecutive experts are merged into one
// rectangle.
std::vector<TensorSlice> shard_reads(const ModelConfig& config, const ShardSpec& shard);

// The full-tensor views of the tensors shard_reads may name, keyed by name (for coverage checks).
std::vector<std::pair<std::string, TensorView>> read_tensor_views(const ModelConfig& config);

// File byte ranges of rows x cols of a tensor (its 2-D view), merged where contiguous (full-width
// rows form one range). file_index is 0: the caller knows which file holds the tensor. Throws Error
// when the rectangle lies outside the tensor or the tensor's byte size does not match its shape.
std::vector<ByteRange> slice_byte_ranges(const TensorInfo& info, Range rows, Range cols);

}  // namespace shardlm
