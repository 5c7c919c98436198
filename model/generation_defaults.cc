#include "model/generation_defaults.h"

#include <cmath>
#include <filesystem>
#include <limits>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/error.h"
#include "model/config.h"

namespace shardlm {
namespace {

using nlohmann::json;

// The field's number, or nothing when it is absent or null.
std::optional<double> number_field(const json& doc, const char* name) {
  auto it = doc.find(name);
  if (it == doc.end() || it->is_null()) return std::nullopt;
  if (!it->is_number()) fail("{} must be a number (got {})", name, it->dump());
  const double v = it->get<double>();
  if (!std::isfinite(v)) fail("{} must be finite (got {})", name, v);
  return v;
}

std::optional<int32_t> integer_field(const json& doc, const char* name, int64_t lo, int64_t hi) {
  const std::optional<double> v = number_field(doc, name);
  if (!v) return std::nullopt;
  if (*v != std::floor(*v) || *v < static_cast<double>(lo) || *v > static_cast<double>(hi)) {
    fail("{} must be an integer in [{}, {}] (got {})", name, lo, hi, *v);
  }
  return static_cast<int32_t>(*v);
}

}  // namespace

std::string GenerationDefaults::describe() const {
  std::vector<std::string> parts;
  if (temperature) parts.push_back(fmt::format("temperature {}", *temperature));
  if (top_k) parts.push_back(fmt::format("top_k {}", *top_k));
  if (top_p) parts.push_back(fmt::format("top_p {}", *top_p));
  if (min_p) parts.push_back(fmt::format("min_p {}", *min_p));
  if (repetition_penalty) parts.push_back(fmt::format("repetition_penalty {}", *repetition_penalty));
  if (max_tokens) parts.push_back(fmt::format("max_tokens {}", *max_tokens));
  return parts.empty() ? "none" : fmt::format("{}", fmt::join(parts, ", "));
}

GenerationDefaults parse_generation_defaults(const json& doc) {
  if (!doc.is_object()) fail("generation config must be a JSON object");
  GenerationDefaults d;
  if (std::optional<double> t = number_field(doc, "temperature")) {
    if (*t < 0 || *t > std::numeric_limits<float>::max()) fail("temperature must be >= 0 (got {})", *t);
    d.temperature = static_cast<float>(*t);
  }
  if (std::optional<int32_t> k = integer_field(doc, "top_k", -1, 65536)) d.top_k = *k < 0 ? 0 : *k;  // -1 and 0: off
  if (std::optional<double> p = number_field(doc, "top_p")) {
    if (!(*p > 0 && *p <= 1) || !(static_cast<float>(*p) > 0)) fail("top_p must be in (0, 1] (got {})", *p);
    d.top_p = static_cast<float>(*p);
  }
  if (std::optional<double> p = number_field(doc, "min_p")) {
    if (!(*p >= 0 && *p <= 1)) fail("min_p must be in [0, 1] (got {})", *p);
    d.min_p = static_cast<float>(*p);
  }
  if (std::optional<int32_t> m = integer_field(doc, "max_new_tokens", 1, std::numeric_limits<int32_t>::max())) d.max_tokens = *m;
  if (std::optional<double> p = number_field(doc, "repetition_penalty")) {
    d.repetition_penalty = static_cast<float>(*p);
    if (!(*p > 0) || !(*d.repetition_penalty > 0.0f) || *p > std::numeric_limits<float>::max()) {
      fail("repetition_penalty must be > 0 and a single-precision number (got {})", *p);
    }
  }
  return d;
}

GenerationDefaults load_generation_defaults(const std::string& source, const std::string& model_dir) {
  namespace fs = std::filesystem;
  if (source == "none" || source == "vllm") return {};  // "vllm": vLLM's name for the same
  fs::path path;
  if (source == "auto") {
    if (model_dir.empty()) return {};
    fs::path dir(model_dir);
    if (fs::is_regular_file(dir)) dir = dir.parent_path();
    path = dir / "generation_config.json";
    if (!fs::exists(path)) return {};
  } else {
    path = source;
    if (fs::is_directory(path)) path /= "generation_config.json";
    if (!fs::exists(path)) fail("--generation-config {}: {} does not exist", source, path.string());
  }
  const json doc = read_json_file(path.string());
  try {
    return parse_generation_defaults(doc);
  } catch (const Error& e) {
    fail("{}: {}", path.string(), e.what());
  }
}

}  // namespace shardlm
