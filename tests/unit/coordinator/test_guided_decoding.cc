// Guided decoding's constraints: the byte-level JSON reader, and the token masks over the tiny
// golden model's tokenizer.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "coordinator/guided_decoding.h"
#include "model/tokenizer.h"

namespace shardlm {
namespace {

bool accepts(const std::string& text, bool object_only = true) {
  JsonAcceptor a(object_only);
  return a.feed(text);
}

bool whole(const std::string& text, bool object_only = true) {
  JsonAcceptor a(object_only);
  return a.feed(text) && a.complete();
}

TEST(JsonAcceptor, WholeDocumentsAndTheirPrefixes) {
  const std::vector<std::string> docs = {
      "{}",
      "{\"a\": 1}",
      " {\n  \"name\": \"sea\",\n  \"depth\": -12.5e+3,\n  \"ok\": true,\n  \"none\": null,\n  \"list\": [1, 0, 2.0E-2, \"x\", [], {}]\n}",
      "{\"esc\": \"a\\\"b\\\\c\\/\\b\\f\\n\\r\\t\\u00e9\\uD83D\\uDE00\\ud7ff\"}",
      "{\"utf8\": \"\xc3\xa9\xe2\x82\xac\"}",
      "{\"n\":[0,-0,10,1.5,1e5,1E-5]}",
  };
  for (const std::string& d : docs) {
    EXPECT_TRUE(whole(d)) << d;
    EXPECT_NO_THROW((void)nlohmann::json::parse(d)) << d;
    for (size_t n = 0; n < d.size(); ++n) {
      JsonAcceptor a;
      EXPECT_TRUE(a.feed(d.substr(0, n))) << d.substr(0, n);
      EXPECT_FALSE(a.complete()) << d.substr(0, n);
    }
    // Nothing follows a whole document, not even a blank.
    EXPECT_FALSE(accepts(d + " ")) << d;
  }
}

TEST(JsonAcceptor, RefusesWhatIsNotJson) {
  for (const std::string& bad : {"[]", "\"s\"", "1", "true", "{a", "{\"a\" 1}", "{\"a\":}", "{\"a\":1,}", "{,", "{\"a\":01}",
                                 "{\"a\":1.}", "{\"a\":-}", "{\"a\":1e}", "{\"a\":tru }", "{\"a\":nul", "{\"a\":\"\x01\"}",
                                 "{\"a\":\"\\x\"}", "{\"a\":\"\\u12G4\"}", "{\"a\":\"\\uD83D\"}", "{\"a\":\"\\uDE00\"}",
                                 "{\"a\":\"\\uD83Dx\"}", "{\"a\":\"\\uD83D\\n\"}", "{\"a\":\"\\uD83D\\u0041\"}", "{\"a\":[1,]}", "{\"a\":[1 2]}", "{\"a\":1]", "{]", "}"}) {
    JsonAcceptor a;
    EXPECT_FALSE(a.feed(bad) && a.complete()) << bad;
  }
  // UTF-8 in strings: whole characters only.
  for (const std::string& bad : {"{\"a\":\"\xcf \"}", "{\"a\":\"\x80\"}", "{\"a\":\"\xc0\xaf\"}", "{\"a\":\"\xe0\x80\xaf\"}",
                                 "{\"a\":\"\xed\xa0\x80\"}", "{\"a\":\"\xf4\x90\x80\x80\"}", "{\"a\":\"\xf5\"}", "{\"a\":\"\xe2\x82\"}"}) {
    EXPECT_FALSE(accepts(bad)) << bad;
  }
  EXPECT_TRUE(whole("{\"a\":\"\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\xed\x9f\xbf\"}"));
  EXPECT_FALSE(accepts("{\"a\":1,}"));
  EXPECT_FALSE(accepts("{\"a\":01"));
  EXPECT_FALSE(accepts("["));
  // Any value at the top when an object is not required.
  EXPECT_TRUE(whole("[1, {\"a\": []}]", false));
  EXPECT_TRUE(whole("\"s\"", false));
  EXPECT_TRUE(whole("-3.5", false));
  EXPECT_TRUE(whole("null", false));
}

TEST(JsonAcceptor, BlanksAndDepthAreBounded) {
  EXPECT_TRUE(accepts("{" + std::string(JsonAcceptor::kMaxBlanks, ' ')));
  EXPECT_FALSE(accepts("{" + std::string(JsonAcceptor::kMaxBlanks + 1, ' ')));
  EXPECT_TRUE(accepts("{\"a\":\"" + std::string(500, ' ') + "\"}"));  // inside strings they are text
  std::string deep = "{\"a\":";
  for (int i = 1; i < JsonAcceptor::kMaxDepth; ++i) deep += "[";
  EXPECT_TRUE(accepts(deep));
  EXPECT_FALSE(accepts(deep + "["));
}

const std::string kTiny = std::string(SHARDLM_TEST_DATA) + "/dense";

// The mask allows exactly the tokens whose bytes continue the text; never a special token.
TEST(GuidedDecoding, MasksFollowTheTokensBytes) {
  const Tokenizer tokenizer = Tokenizer::load(kTiny);
  auto table = std::make_shared<const TokenTable>(tokenizer);
  auto json = json_object_spec(table)->start();
  std::vector<uint8_t> allowed;
  EXPECT_FALSE(json->allowed_tokens(allowed));
  ASSERT_EQ(allowed.size(), static_cast<size_t>(tokenizer.vocab_size()));
  int count = 0;
  for (int32_t id = 0; id < tokenizer.vocab_size(); ++id) {
    const bool expect = tokenizer.is_valid(id) && !tokenizer.is_special(id) && !tokenizer.token_bytes(id).empty() &&
                        accepts(tokenizer.token_bytes(id));
    EXPECT_EQ(allowed[static_cast<size_t>(id)] != 0, expect) << id;
    count += expect;
  }
  EXPECT_GT(count, 0);
  EXPECT_FALSE(allowed[static_cast<size_t>(tokenizer.bos_id())]);
  // Feed "{}" token by token: then complete, and nothing more allowed.
  for (int32_t id : tokenizer.encode("{}", false)) json->accept(id);
  EXPECT_TRUE(json->allowed_tokens(allowed));
  for (uint8_t a : allowed) EXPECT_EQ(a, 0);

  auto choice = choice_spec(table, {"yes", "no", "yes please"})->start();
  choice->allowed_tokens(allowed);
  for (int32_t id = 0; id < tokenizer.vocab_size(); ++id) {
    if (!allowed[static_cast<size_t>(id)]) continue;
    const std::string b = tokenizer.token_bytes(id);
    EXPECT_TRUE(std::string("yes").rfind(b, 0) == 0 || std::string("no").rfind(b, 0) == 0 || std::string("yes please").rfind(b, 0) == 0) << b;
  }
  for (int32_t id : tokenizer.encode("yes", false)) choice->accept(id);
  EXPECT_TRUE(choice->complete());
  EXPECT_TRUE(choice->allowed_tokens(allowed));  // complete, and " please" may still follow
  bool more = false;
  for (uint8_t a : allowed) more = more || a;
  EXPECT_TRUE(more);
  EXPECT_THROW(choice_spec(table, {}), Error);
  EXPECT_THROW(choice_spec(table, {"a", ""}), Error);
}

}  // namespace
}  // namespace shardlm
