// Internal part of the model generator: streams the random weights of a config into one
// model.safetensors or into shards plus model.safetensors.index.json.
#pragma once

#include <string>

#include "model/generator.h"

namespace shardlm {

// Writes the weight file(s) of `config` into out_dir; fills result.weight_files / weight_bytes /
// parameters.
void write_generated_weights(const std::string& out_dir, const ModelConfig& config, const GeneratorOptions& options,
                             GeneratedModel& result);

}  // namespace shardlm
