// The sampling defaults a checkpoint recommends in its generation_config.json (Gemma 4: temperature
// 1.0, top_k 64, top_p 0.95): the server gives them to requests that leave those fields out, as vLLM
// does with --generation-config auto. A request's own values always win.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace shardlm {

struct GenerationDefaults {
  std::optional<float> temperature;
  std::optional<int32_t> top_k;  // 0 = off
  std::optional<float> top_p;
  std::optional<float> min_p;
  std::optional<float> repetition_penalty;  // > 0; 1 = off
  std::optional<int32_t> max_tokens;  // from max_new_tokens: a limit on every request's output

  bool empty() const { return !temperature && !top_k && !top_p && !min_p && !repetition_penalty && !max_tokens; }
  // "temperature 1, top_k 64, top_p 0.95" (or "none").
  std::string describe() const;
};

// Reads the sampling fields of a generation_config.json document (temperature, top_k, top_p, min_p,
// repetition_penalty, max_new_tokens; a null field counts as absent, others such as do_sample are not
// read, as vLLM does).
// Throws Error naming the field when a value is not a number or out of its range.
GenerationDefaults parse_generation_defaults(const nlohmann::json& doc);

// `source`: "auto" reads MODEL_DIR/generation_config.json (none when model_dir is empty or the file
// is absent), "none" (or vLLM's "vllm") gives no defaults, anything else is a generation_config.json
// file or a folder holding one. Throws Error naming the file and field.
GenerationDefaults load_generation_defaults(const std::string& source, const std::string& model_dir);

}  // namespace shardlm
