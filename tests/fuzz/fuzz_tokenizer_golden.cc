// Fuzz target: the golden test tokenizer (tests/data/dense/tokenizer.json, a Gemma pipeline: Replace
// normalizer, BPE with byte fallback, special tokens, TemplateProcessing, Replace/ByteFallback/Fuse
// decoder) encoding arbitrary bytes. Encoding never throws; every id is valid; decode and the
// streaming detokenizer agree; for well-formed UTF-8 without U+2581 (which the decoder turns into a
// space) decode(encode(text)) gives the text back; invalid UTF-8 decodes to well-formed UTF-8.
#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"
#include "model/tokenizer.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

const shardlm::Tokenizer& golden() {
  static const shardlm::Tokenizer t = shardlm::Tokenizer::load(shardlm::fuzz::test_data_dir() + "/dense");
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shardlm;
  const Tokenizer& t = golden();
  const std::string_view text = fuzz::as_text(data, size);
  for (const bool add_bos : {false, true}) {
    const std::vector<int32_t> ids = t.encode(text, add_bos);
    for (const int32_t id : ids) FUZZ_CHECK(t.is_valid(id));
    if (add_bos && !ids.empty()) FUZZ_CHECK(ids.front() == t.bos_id());
    for (const bool skip : {false, true}) {
      const std::string decoded = t.decode(ids, skip);
      FUZZ_CHECK(fuzz::is_valid_utf8(decoded));
      StreamingDetokenizer d(t, skip);
      std::string streamed;
      for (const int32_t id : ids) {
        const std::string piece = d.push(id);
        FUZZ_CHECK(fuzz::is_valid_utf8(piece));
        streamed += piece;
      }
      streamed += d.flush();
      FUZZ_CHECK(streamed == decoded);
      if (!add_bos && !skip && fuzz::is_valid_utf8(text) && text.find("\xE2\x96\x81") == std::string_view::npos) {
        FUZZ_CHECK(decoded == text);
      }
    }
  }
  return 0;
}
