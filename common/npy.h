// NumPy .npy files (format version 1, little-endian float32, C order): the exchange format of
// logits and hidden states with reference implementations.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace shardlm {

struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

// Reads a float32 C-order .npy file; throws Error naming the file and what is wrong.
NpyArray read_npy(const std::string& path);

// Writes a float32 C-order .npy file.
void write_npy(const std::string& path, const std::vector<int64_t>& shape, const float* data);

}  // namespace shardlm
