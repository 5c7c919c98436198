// The Hugging Face tensor layout of a Gemma 4 text decoder (gemma4.md 3.1): which tensors a checkpoint
// must hold for a ModelConfig, with their shapes, and a check of a checkpoint against that list.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/config.h"

namespace shardlm {

class Checkpoint;

struct ExpectedTensor {
  std::string name;
  std::vector<int64_t> shape;  // [out, in] for matrices (HF convention)
};

// Every tensor of the text decoder, in a fixed order: embed_tokens, the PLE tables (when PLE is on),
// layer 0..L-1 (attention, MLP, MoE, PLE, layer_scalar), norm, and lm_head.weight when not tied.
// KV-shared layers list no k_proj / v_proj / k_norm; K=V full layers list no v_proj.
std::vector<ExpectedTensor> expected_tensors(const ModelConfig& config);

// config.tensor_prefix + suffix, e.g. "model.language_model.norm.weight".
std::string model_tensor_name(const ModelConfig& config, std::string_view suffix);
// config.tensor_prefix + "layers.{layer}." + suffix.
std::string layer_tensor_name(const ModelConfig& config, int layer, std::string_view suffix);

// Shape text like "[128, 2816]".
std::string shape_string(const std::vector<int64_t>& shape);

// True for tensors a checkpoint may carry beyond the expected list without a warning: the vision and
// audio towers and their projections, lm_head.weight of a tied model, and the unused k_proj / v_proj /
// k_norm of KV-shared layers.
bool is_known_extra_tensor(const ModelConfig& config, const std::string& name);

// Checks that every expected tensor is present with the expected shape; throws Error naming the first
// missing or mismatched tensor (expected vs actual shape). Tensors that are neither expected nor known
// extras are reported with one spdlog warning. Returns the number of such unexpected tensors.
int validate_checkpoint_tensors(const Checkpoint& checkpoint, const ModelConfig& config);

}  // namespace shardlm
