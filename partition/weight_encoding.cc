#include "partition/weight_encoding.h"

#include "common/error.h"

namespace shardlm {
namespace {

// Bytes per 32 weights (a quantisation block) of each encoding.
int64_t bytes_per_32(WeightEncoding e) {
  switch (e) {
    case WeightEncoding::kF32: return 128;
    case WeightEncoding::kBF16: return 64;
    case WeightEncoding::kInt8: return 32;  // per-row f32 scales: negligible
    case WeightEncoding::kQ4: return 16 + 2;
  }
  return 128;
}

const WeightEncoding kLargestFirst[] = {WeightEncoding::kF32, WeightEncoding::kBF16, WeightEncoding::kInt8,
                                        WeightEncoding::kQ4};

}  // namespace

WeightEncoding parse_weight_encoding(const std::string& name) {
  for (WeightEncoding e : kLargestFirst) {
    if (name == weight_encoding_name(e)) return e;
  }
  fail("unknown weight format '{}' (expected bf16, int8, q4 or f32)", name);
}

const char* weight_encoding_name(WeightEncoding e) {
  switch (e) {
    case WeightEncoding::kF32: return "f32";
    case WeightEncoding::kBF16: return "bf16";
    case WeightEncoding::kInt8: return "int8";
    case WeightEncoding::kQ4: return "q4";
  }
  return "?";
}

int64_t matrix_bytes(WeightEncoding e, int64_t elements) {
  return (elements * bytes_per_32(e) + 31) / 32;
}

std::vector<WeightEncoding> smaller_encodings(WeightEncoding e) {
  std::vector<WeightEncoding> out;
  for (WeightEncoding c : kLargestFirst) {
    if (bytes_per_32(c) < bytes_per_32(e)) out.push_back(c);
  }
  return out;
}

}  // namespace shardlm
