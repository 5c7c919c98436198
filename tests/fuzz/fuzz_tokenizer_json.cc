// Fuzz target: Tokenizer::from_json on an arbitrary tokenizer.json (and tokenizer_config.json), then
// encode / decode / streaming detokenization of arbitrary text with the tokenizer it built.
// Input: TEXT "\0\0" TOKENIZER_JSON "\0\0" CONFIG_JSON (missing parts are empty).
// Loading may throw shardlm::Error; once loaded, encode must return valid ids, decode of those ids
// must not throw, and the streamed text must equal decode() (the documented exception, a decoder
// Strip, is skipped). Anything else (another exception, a crash, a sanitizer report) is a bug.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "common/error.h"
#include "model/tokenizer.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

void check_round(const shardlm::Tokenizer& t, std::string_view text, bool add_bos, bool compare_stream) {
  using namespace shardlm;
  const std::vector<int32_t> ids = t.encode(text, add_bos);
  for (const int32_t id : ids) {
    FUZZ_CHECK(t.is_valid(id));
    FUZZ_CHECK(id >= 0 && id < t.vocab_size());
    (void)t.piece(id);
  }
  for (const bool skip : {false, true}) {
    const std::string decoded = t.decode(ids, skip);
    StreamingDetokenizer d(t, skip);
    std::string streamed;
    for (const int32_t id : ids) streamed += d.push(id);
    streamed += d.flush();
    if (compare_stream) FUZZ_CHECK(streamed == decoded);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shardlm;
  static const bool quiet = (spdlog::set_level(spdlog::level::off), true);
  (void)quiet;
  const std::vector<std::string_view> parts = fuzz::split_fields(fuzz::as_text(data, size), std::string_view("\0\0", 2), 3);
  const std::string_view text = parts[0];
  const std::string_view tokenizer_json = parts[1];
  const std::string_view config_json = parts[2];
  std::optional<Tokenizer> t;
  try {
    t.emplace(Tokenizer::from_json(tokenizer_json, config_json, "fuzz tokenizer.json"));
  } catch (const Error&) {
    return 0;
  }
  (void)t->bos_id();
  (void)t->eos_id();
  (void)t->pad_id();
  (void)t->unk_id();
  FUZZ_CHECK(t->vocab_size() >= 0);
  // A decoder Strip may remove characters at the end that the stream has already returned.
  const bool compare_stream = tokenizer_json.find("Strip") == std::string_view::npos;
  check_round(*t, text, true, compare_stream);
  check_round(*t, text, false, compare_stream);
  // Decoding arbitrary ids: each is a token or the call throws Error naming it.
  std::vector<int32_t> ids;
  for (size_t i = 0; i + 1 < text.size() && ids.size() < 64; i += 2) {
    ids.push_back(static_cast<int32_t>(static_cast<uint8_t>(text[i]) | (static_cast<uint8_t>(text[i + 1]) << 8)) - 8);
  }
  try {
    (void)t->decode(ids, (size & 1) != 0);
  } catch (const Error&) {
  }
  if (!text.empty()) {
    if (auto id = t->find_token(text)) FUZZ_CHECK(t->is_valid(*id));
  }
  return 0;
}
