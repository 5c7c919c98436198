// Random weights of a generated model: initialisation rules, a counter-based PRNG (so values depend
// only on seed, tensor name and element index), and streaming into safetensors files.
//
// Initialisation (uniform distributions with the stated mean and standard deviation; a uniform of
// half-width a has sd a / sqrt(3)). Chosen so the residual stream stays O(1) through any depth:
//  * matrices (projections, MLP, experts, PLE gate/projection, untied lm_head): mean 0,
//    sd 1/sqrt(in_features) (in = last dimension), so y = W x keeps unit scale;
//  * embed_tokens: sd 1/sqrt(H): the scaled embedding E[t] * sqrt(H) has unit RMS, and tied logits
//    E y have sd ~ 1 before soft-capping;
//  * embed_tokens_per_layer: sd 1/sqrt(P) (its rows are scaled by sqrt(P));
//  * RMSNorm weights: 1 +- 0.3 (uniform);
//  * q_norm / k_norm weights: w = sqrt(2) / head_dim^(1/4) (+-20%), so that q.k (attention scale
//    1.0) has sd ~ 2 instead of sqrt(head_dim) and the softmax stays soft;
//  * layer_scalar: 0.75 +- 0.15: the stream x <- (x + a + m) * s settles at RMS ~ sqrt(2 s^2/(1-s^2));
//  * router.proj: sd 2 (router logits sd ~ 2 whatever H); router.scale 1 +- 0.15;
//    router.per_expert_scale 0.9 +- 0.3.
#include "model/generator_weights.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <thread>

#include <fmt/format.h>

#include "common/error.h"
#include "common/half.h"
#include "model/tensor_names.h"

namespace shardlm {
namespace {

constexpr uint64_t kGamma = 0x9E3779B97F4A7C15ull;

inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

uint64_t tensor_key(uint64_t seed, const std::string& name) { return mix64(mix64(seed + kGamma) ^ fnv1a(name)); }

bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

TensorInit with_sd(double mean, double sd) { return {mean, sd * std::sqrt(3.0)}; }

// Fills out[0..n) with values begin..begin+n of the tensor whose key is `key`.
void fill_values(float* out, int64_t begin, int64_t n, uint64_t key, const TensorInit& init) {
  const float scale = static_cast<float>(2.0 * init.half_width / 16777216.0);
  const float offset = static_cast<float>(init.mean - init.half_width * (1.0 - 1.0 / 16777216.0));
  int64_t i = 0;
  auto value = [&](uint32_t bits) { return static_cast<float>(bits >> 8) * scale + offset; };
  if (begin & 1) {  // odd start: the high half of the pair
    out[0] = value(static_cast<uint32_t>(mix64(key + static_cast<uint64_t>((begin >> 1) + 1) * kGamma) >> 32));
    i = 1;
  }
  for (; i + 1 < n; i += 2) {
    const uint64_t pair = static_cast<uint64_t>((begin + i) >> 1);
    const uint64_t z = mix64(key + (pair + 1) * kGamma);
    out[i] = value(static_cast<uint32_t>(z));
    out[i + 1] = value(static_cast<uint32_t>(z >> 32));
  }
  if (i < n) {
    const uint64_t pair = static_cast<uint64_t>((begin + i) >> 1);
    out[i] = value(static_cast<uint32_t>(mix64(key + (pair + 1) * kGamma)));
  }
}

// Converts f32 values to the storage dtype in place-compatible output bytes.
void encode(const float* in, int64_t n, DType dtype, uint8_t* out) {
  switch (dtype) {
    case DType::kF32:
      std::memcpy(out, in, static_cast<size_t>(n) * 4);
      break;
    case DType::kBF16: {
      auto* o = reinterpret_cast<uint16_t*>(out);
      for (int64_t i = 0; i < n; ++i) o[i] = f32_to_bf16(in[i]);
      break;
    }
    case DType::kF16: {
      auto* o = reinterpret_cast<uint16_t*>(out);
      for (int64_t i = 0; i < n; ++i) o[i] = f32_to_f16(in[i]);
      break;
    }
  }
}

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

constexpr int64_t kChunk = int64_t{1} << 21;  // elements generated per task

// Streams one tensor into the writer, generating chunks on `threads` threads.
void stream_tensor(SafetensorsWriter& writer, const ExpectedTensor& t, const TensorInit& init, uint64_t seed,
                   DType dtype, int threads) {
  const int64_t n = numel(t.shape);
  const uint64_t key = tensor_key(seed, t.name);
  const size_t esize = dtype_size(dtype);
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  const int workers = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, chunks)));
  std::vector<std::vector<float>> scratch(workers, std::vector<float>(static_cast<size_t>(std::min(n, kChunk))));
  std::vector<std::vector<uint8_t>> bytes(workers, std::vector<uint8_t>(static_cast<size_t>(std::min(n, kChunk)) * esize));
  for (int64_t first = 0; first < chunks; first += workers) {
    auto work = [&](int w) {
      const int64_t c = first + w;
      if (c >= chunks) return;
      const int64_t begin = c * kChunk, count = std::min(kChunk, n - begin);
      fill_values(scratch[w].data(), begin, count, key, init);
      encode(scratch[w].data(), count, dtype, bytes[w].data());
    };
    std::vector<std::thread> pool;
    for (int w = 1; w < workers; ++w) pool.emplace_back(work, w);
    work(0);
    for (auto& th : pool) th.join();
    for (int w = 0; w < workers && first + w < chunks; ++w) {
      const int64_t count = std::min(kChunk, n - (first + w) * kChunk);
      writer.append(bytes[w].data(), static_cast<size_t>(count) * esize);
    }
  }
}

}  // namespace

TensorInit tensor_init(const ModelConfig& config, const std::string& name, const std::vector<int64_t>& shape) {
  if (shape.empty()) fail("generator: tensor {} has no shape", name);
  if (ends_with(name, "layer_scalar")) return {0.75, 0.15};
  if (ends_with(name, "router.per_expert_scale")) return {0.9, 0.3};
  if (ends_with(name, "router.scale")) return {1.0, 0.15};
  if (ends_with(name, "self_attn.q_norm.weight") || ends_with(name, "self_attn.k_norm.weight")) {
    const double w = std::sqrt(2.0) / std::pow(static_cast<double>(shape[0]), 0.25);
    return {w, 0.2 * w};
  }
  if (shape.size() == 1 && ends_with(name, "norm.weight")) return {1.0, 0.3};
  if (ends_with(name, "router.proj.weight")) return with_sd(0.0, 2.0);
  if (ends_with(name, "embed_tokens_per_layer.weight")) {
    return with_sd(0.0, 1.0 / std::sqrt(static_cast<double>(std::max(1, config.hidden_size_per_layer_input))));
  }
  return with_sd(0.0, 1.0 / std::sqrt(static_cast<double>(shape.back())));
}

float generated_value(uint64_t seed, const std::string& name, const TensorInit& init, int64_t index) {
  float v = 0.0f;
  fill_values(&v, index, 1, tensor_key(seed, name), init);
  return v;
}

void generated_values(uint64_t seed, const std::string& name, const TensorInit& init, int64_t begin, int64_t n,
                      float* out) {
  if (n > 0) fill_values(out, begin, n, tensor_key(seed, name), init);
}

void write_generated_weights(const std::string& out_dir, const ModelConfig& config, const GeneratorOptions& options,
                             GeneratedModel& result) {
  const std::vector<ExpectedTensor> tensors = expected_tensors(config);
  const size_t esize = dtype_size(options.dtype);
  if (options.shard_mb < 0) fail("generator: shard size must be >= 0 MB (got {})", options.shard_mb);

  // Plan the files: tensors in order, a new shard when the next tensor would overflow the limit.
  std::vector<std::vector<size_t>> files(1);
  const uint64_t limit = options.shard_mb > 0 ? static_cast<uint64_t>(options.shard_mb) * 1000000ull : 0;
  uint64_t current = 0, total = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const uint64_t b = static_cast<uint64_t>(numel(tensors[i].shape)) * esize;
    if (limit > 0 && current > 0 && current + b > limit) {
      files.emplace_back();
      current = 0;
    }
    files.back().push_back(i);
    current += b;
    total += b;
    result.parameters += numel(tensors[i].shape);
  }
  const int nfiles = static_cast<int>(files.size());
  std::map<std::string, std::string> weight_map;
  for (int f = 0; f < nfiles; ++f) {
    const std::string file =
        nfiles == 1 ? "model.safetensors" : fmt::format("model-{:05d}-of-{:05d}.safetensors", f + 1, nfiles);
    SafetensorsWriter writer((std::filesystem::path(out_dir) / file).string());
    for (size_t i : files[f]) {
      writer.declare(tensors[i].name, options.dtype, tensors[i].shape);
      weight_map[tensors[i].name] = file;
    }
    writer.begin_data();
    for (size_t i : files[f]) {
      const ExpectedTensor& t = tensors[i];
      stream_tensor(writer, t, tensor_init(config, t.name, t.shape), options.seed, options.dtype,
                    std::max(1, options.threads));
    }
    writer.finish();
    result.weight_files.push_back(file);
  }
  if (nfiles > 1) write_safetensors_index(out_dir, weight_map, total);
  result.weight_bytes = total;
}

}  // namespace shardlm
