// The Gemma 4 variant table: the released text-decoder shapes (E2B, E4B, 31B, 26B-A4B, gemma4.md 1)
// and the tiny test shapes of tests/data (tiny-dense, tiny-moe, tiny-edge), as data; resizing a
// variant to another layer count; and recognising which variant a loaded config is.
//
// Recognition rule: a config is variant V when every shape field (widths, heads, head dims, K=V,
// window, vocabulary, MoE, PLE, double-wide MLP, RoPE, norm eps, soft-cap, tying) equals V's and its
// layer types and KV sharing equal those of V resized to the config's layer count (see
// variant_with_layers). config.variant then holds V's base name; describe_variant() adds the layer
// count when it differs from the released one, e.g. "31b (2 of 60 layers)". Not compared: EOS ids,
// dtype, max_position_embeddings, the architecture / tensor prefix. Anything else is "custom".
#pragma once

#include <string>
#include <vector>

#include "model/config.h"

namespace shardlm {

// Names of the table: "e2b", "e4b", "31b", "26b-a4b", "tiny-dense", "tiny-moe", "tiny-edge".
const std::vector<std::string>& variant_names();

// The variant's config (Gemma4ForConditionalGeneration layout, BF16, eos [1, 106, 50]). Accepts the
// alias "tiny" for "tiny-dense" and upper-case spellings. Throws Error listing the known names.
const ModelConfig& variant_config(const std::string& name);

// Canonical table name for `name` (resolves "tiny", case); throws Error for unknown names.
std::string canonical_variant_name(const std::string& name);

// The variant with `layers` layers: layer_types is the variant's pattern (repeated if longer) cut to
// `layers`, with the last layer forced to full_attention as Hugging Face does; num_kv_shared_layers is
// scaled by layers / released layers (rounded down) and lowered until every shared layer has a donor.
// layers == the released count gives the variant unchanged.
ModelConfig variant_with_layers(const std::string& name, int layers);

// Base name of the variant `config` matches (rule above), or "custom".
std::string recognise_variant(const ModelConfig& config);

// "31b", "31b (2 of 60 layers)" or "custom" (from config.variant and the layer count).
std::string describe_variant(const ModelConfig& config);

}  // namespace shardlm
