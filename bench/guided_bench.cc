// Guided decoding's cost per generated token on the coordinator: the time to compute one step's mask
// of allowed tokens over a whole vocabulary, for a JSON object and a JSON Schema, at the start of
// the output (most tokens refused by their first byte) and inside a string (most allowed).
// Usage: shardlm_bench_guided [TOKENIZER_DIR] (default: the synthetic Gemma-4-style tokenizer of
// 262144 tokens that generated models use).
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/median.h"
#include "coordinator/guided_decoding.h"
#include "model/synthetic_tokenizer.h"
#include "model/tokenizer.h"

using namespace shardlm;

int main(int argc, char** argv) {
  Tokenizer tokenizer = [&] {
    if (argc > 1) return Tokenizer::load(argv[1]);
    const SyntheticTokenizer s = build_synthetic_tokenizer(262144);
    return Tokenizer::from_json(synthetic_tokenizer_json(s), synthetic_tokenizer_config_json(s));
  }();
  auto table = std::make_shared<const TokenTable>(tokenizer);
  const nlohmann::json schema = nlohmann::json::parse(
      R"({"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}}}, "required": ["name", "age"]})");
  std::printf("vocabulary %d tokens (%s)\n", table->size(), argc > 1 ? argv[1] : "synthetic");
  std::printf("%-12s %-28s %12s %10s\n", "form", "output so far", "ms / mask", "allowed");
  for (int kind = 0; kind < 2; ++kind) {
    const auto spec = kind == 0 ? json_object_spec(table) : json_schema_spec(table, schema);
    for (const char* prefix : {"", "{\"age\": 12, \"name\": \"Jo"}) {
      auto c = spec->start();
      for (int32_t id : tokenizer.encode(prefix, false)) c->accept(id);
      std::vector<uint8_t> allowed;
      std::vector<double> ms;
      for (int r = 0; r < 15; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        c->allowed_tokens(allowed);
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      }
      int n = 0;
      for (uint8_t a : allowed) n += a;
      std::printf("%-12s %-28s %12.2f %10d\n", kind == 0 ? "json_object" : "json_schema", nlohmann::json(prefix).dump().c_str(),
                  bench::median(ms), n);
    }
  }
}
