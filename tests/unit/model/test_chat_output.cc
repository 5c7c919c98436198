// Parsing generated Gemma 4 turns: reasoning / content / tool calls, malformed tool calls left as
// text, round trips through the chat template renderer, and the streaming parser agreeing with the
// one-shot parser however the text is split.
#include <random>

#include <gtest/gtest.h>

#include "model/chat_output.h"
#include "model/chat_template.h"

namespace shardlm {
namespace {

using nlohmann::json;

TEST(ChatOutput, PlainContentEndsAtTheTurnMarker) {
  const ChatOutput out = parse_chat_output("  Hello there!\n<turn|>ignored after the end");
  EXPECT_EQ(out.content, "Hello there!");
  EXPECT_EQ(out.reasoning, "");
  EXPECT_TRUE(out.tool_calls.empty());
  EXPECT_TRUE(out.ended);
}

TEST(ChatOutput, WithoutEndMarker) {
  const ChatOutput out = parse_chat_output("partial answer");
  EXPECT_EQ(out.content, "partial answer");
  EXPECT_FALSE(out.ended);
}

TEST(ChatOutput, ReasoningAndContent) {
  const ChatOutput out = parse_chat_output("<|channel>thought\nLet me think.\n2+2=4<channel|>The answer is 4.<eos>");
  EXPECT_EQ(out.reasoning, "Let me think.\n2+2=4");
  EXPECT_EQ(out.content, "The answer is 4.");
  EXPECT_TRUE(out.ended);
}

TEST(ChatOutput, EmptyAndUnterminatedThoughts) {
  EXPECT_EQ(parse_chat_output("<|channel>thought\n<channel|>Hi").content, "Hi");
  EXPECT_EQ(parse_chat_output("<|channel>thought<channel|>Hi").content, "Hi");
  const ChatOutput cut = parse_chat_output("<|channel>thought\nstill thinking");
  EXPECT_EQ(cut.reasoning, "still thinking");
  EXPECT_EQ(cut.content, "");
}

TEST(ChatOutput, ToolCallArguments) {
  const ChatOutput out = parse_chat_output(
      "<|tool_call>call:get_weather{days:3,location:<|\"|>Paris, FR {x:1}<|\"|>,metric:true,missing:None,"
      "opts:{deep:{x:null,y:[]}},ratio:-2.5e-07,tags:[<|\"|>a<|\"|>,<|\"|><|\"|>,[1,false]]}<tool_call|><|tool_response>");
  ASSERT_EQ(out.tool_calls.size(), 1u);
  EXPECT_EQ(out.tool_calls[0].name, "get_weather");
  EXPECT_EQ(out.tool_calls[0].arguments, json::parse(R"({"days":3,"location":"Paris, FR {x:1}","metric":true,
    "missing":null,"opts":{"deep":{"x":null,"y":[]}},"ratio":-2.5e-07,"tags":["a","",[1,false]]})"));
  EXPECT_EQ(out.content, "");
  EXPECT_TRUE(out.ended);
}

TEST(ChatOutput, SeveralToolCallsAfterReasoningAndText) {
  const ChatOutput out = parse_chat_output(
      "<|channel>thought\nNeed both.<channel|>Checking. <|tool_call>call:a{}<tool_call|>"
      "<|tool_call>call:b.v2{<|\"|>quoted key<|\"|>:1}<tool_call|><turn|>");
  EXPECT_EQ(out.reasoning, "Need both.");
  EXPECT_EQ(out.content, "Checking.");
  ASSERT_EQ(out.tool_calls.size(), 2u);
  EXPECT_EQ(out.tool_calls[0].name, "a");
  EXPECT_EQ(out.tool_calls[0].arguments, json::object());
  EXPECT_EQ(out.tool_calls[1].name, "b.v2");
  EXPECT_EQ(out.tool_calls[1].arguments, json::parse(R"({"quoted key":1})"));
}

TEST(ChatOutput, MalformedToolCallsStayInContent) {
  const char* bodies[] = {
      "call:f{a:<|\"|>unterminated}",  // string never closed
      "call:{a:1}",                    // no name
      "call:f{a:1} trailing",          // text after the arguments
      "call:f{a:hello}",               // bare word value
      "call:f{a:1,}",                  // dangling comma
      "call:f{a 1}",                   // no colon
      "invoke:f{}",                    // not a call
      "call:f{a:[1,2}",                // unbalanced
      "call:my func{}",                // space in the name
      "call:f{a:1e}",                  // bad number
  };
  for (const char* body : bodies) {
    SCOPED_TRACE(body);
    const std::string text = std::string("Before <|tool_call>") + body + "<tool_call|> after<turn|>";
    const ChatOutput out = parse_chat_output(text);
    EXPECT_TRUE(out.tool_calls.empty());
    EXPECT_EQ(out.content, std::string("Before <|tool_call>") + body + "<tool_call|> after");
    EXPECT_FALSE(parse_tool_call(body).has_value());
  }
  const ChatOutput cut = parse_chat_output("Text <|tool_call>call:f{a:1");
  EXPECT_TRUE(cut.tool_calls.empty());
  EXPECT_EQ(cut.content, "Text <|tool_call>call:f{a:1");
}

TEST(ChatOutput, DeepNestingIsRejectedNotCrashing) {
  std::string deep = "call:f{a:";
  for (int i = 0; i < 10000; ++i) deep += "[";
  EXPECT_FALSE(parse_tool_call(deep).has_value());
}

TEST(ChatOutput, NumbersKeepTheirKind) {
  auto call = parse_tool_call("call:f{i:-42,u:18446744073709551615,f:1.0,e:1e+16,z:-0.0}");
  ASSERT_TRUE(call.has_value());
  EXPECT_TRUE(call->arguments["i"].is_number_integer());
  EXPECT_EQ(call->arguments["i"].get<int64_t>(), -42);
  EXPECT_EQ(call->arguments["u"].get<uint64_t>(), 18446744073709551615ull);
  EXPECT_TRUE(call->arguments["f"].is_number_float());
  EXPECT_EQ(call->arguments["e"].get<double>(), 1e16);
}

// Renders an assistant tool call through the template, cuts out the model turn as the model would
// have generated it, and parses it back.
TEST(ChatOutput, RoundTripThroughTheTemplate) {
  const json arguments[] = {
      json::parse(R"({"location":"Zürich, CH","unit":"celsius"})"),
      json::parse(R"({"n":0,"neg":-17,"big":9007199254740993,"u":18446744073709551615,"f":0.1,"g":-2.5e-07,
                      "one":1.0,"huge":1.5e300,"t":true,"no":false,"nothing":null})"),
      json::parse(R"({"nested":{"a":{"b":{"c":[1,[2,[3,{"d":"e"}]]]}},"empty_obj":{},"empty_arr":[]},
                      "text":"line1\nline2\t\"quoted\" 'single' \\ back {braces} [brackets], commas: colons"})"),
      json::parse(R"({"emoji":"🌍 日本語 مرحبا","spaces":"  padded  ","Upper":1,"lower":2})"),
      json::object(),
  };
  for (const json& args : arguments) {
    SCOPED_TRACE(args.dump());
    json messages = json::array();
    messages.push_back({{"role", "user"}, {"content", "go"}});
    messages.push_back({{"role", "assistant"},
                        {"reasoning_content", "I should call it.\n"},
                        {"tool_calls", json::array({{{"id", "1"},
                                                     {"type", "function"},
                                                     {"function", {{"name", "do_it"}, {"arguments", args.dump()}}}}})}});
    ChatOptions options;
    options.add_generation_prompt = false;
    const std::string prompt = render_chat(messages, options);
    const std::string model_turn = prompt.substr(prompt.rfind("<|turn>model\n") + std::string("<|turn>model\n").size());
    const ChatOutput out = parse_chat_output(model_turn);
    EXPECT_EQ(out.reasoning, "I should call it.\n");
    EXPECT_EQ(out.content, "");
    ASSERT_EQ(out.tool_calls.size(), 1u) << model_turn;
    EXPECT_EQ(out.tool_calls[0].name, "do_it");
    EXPECT_EQ(out.tool_calls[0].arguments, args) << model_turn;
    EXPECT_TRUE(out.ended);
  }
}

ChatOutput collect(ChatOutputStream& stream, const std::vector<std::string>& pieces) {
  ChatOutput out;
  auto add = [&](ChatOutputStream::Delta d) {
    out.reasoning += d.reasoning;
    out.content += d.content;
    for (auto& c : d.tool_calls) out.tool_calls.push_back(std::move(c));
  };
  for (const std::string& p : pieces) add(stream.feed(p));
  add(stream.finish());
  out.ended = stream.ended();
  return out;
}

void expect_same(const ChatOutput& a, const ChatOutput& b) {
  EXPECT_EQ(a.reasoning, b.reasoning);
  EXPECT_EQ(a.content, b.content);
  EXPECT_EQ(a.ended, b.ended);
  ASSERT_EQ(a.tool_calls.size(), b.tool_calls.size());
  for (size_t i = 0; i < a.tool_calls.size(); ++i) {
    EXPECT_EQ(a.tool_calls[i].name, b.tool_calls[i].name);
    EXPECT_EQ(a.tool_calls[i].arguments, b.tool_calls[i].arguments);
  }
}

const char* kSamples[] = {
    "  Hello there!\n<turn|>more",
    "<|channel>thought\nplan: a < b, <channel stuff <|tool_call> inside\n<channel|>\n\nAnswer <b>bold</b>  \n<eos>",
    "Checking. <|tool_call>call:f{a:<|\"|>x <tool_call <|\"|>,b:[1,2.5]}<tool_call|> <|tool_call>call:g{}<tool_call|><|tool_response>",
    "Before <|tool_call>call:f{bad}<tool_call|>  after  ",
    "Text <|tool_call>call:f{a:1",
    "<|channel>thought\nunterminated <chan",
    "a <turn| b <|turn> c <tool_call|> d <channel|> e",
    "",
    "   ",
};

TEST(ChatOutputStream, CharacterByCharacterEqualsOneShot) {
  for (const char* sample : kSamples) {
    SCOPED_TRACE(sample);
    std::vector<std::string> chars;
    for (const char c : std::string(sample)) chars.emplace_back(1, c);
    ChatOutputStream stream;
    expect_same(collect(stream, chars), parse_chat_output(sample));
  }
}

TEST(ChatOutputStream, RandomSplitsEqualOneShot) {
  std::mt19937 rng(1234);
  for (const char* sample : kSamples) {
    const std::string text = sample;
    for (int trial = 0; trial < 50; ++trial) {
      std::vector<std::string> pieces;
      for (size_t i = 0; i < text.size();) {
        const size_t n = std::uniform_int_distribution<size_t>(1, 9)(rng);
        pieces.push_back(text.substr(i, n));
        i += n;
      }
      ChatOutputStream stream;
      SCOPED_TRACE(text);
      expect_same(collect(stream, pieces), parse_chat_output(text));
    }
  }
}

TEST(ChatOutputStream, HoldsBackOnlyWhatIsUndecided) {
  ChatOutputStream stream;
  ChatOutputStream::Delta d = stream.feed("Hello <|tool");
  EXPECT_EQ(d.content, "Hello");  // the space and the possible marker wait
  d = stream.feed("_call>call:f{x:1}");
  EXPECT_TRUE(d.empty());  // the call is not closed yet
  d = stream.feed("<tool_call|> world");
  ASSERT_EQ(d.tool_calls.size(), 1u);
  EXPECT_EQ(d.tool_calls[0].arguments, json::parse(R"({"x":1})"));
  EXPECT_EQ(d.content, "  world");  // the held space joins the text after the call
  d = stream.feed("<|channel>thought\nhm");
  EXPECT_EQ(d.reasoning, "hm");
  d = stream.feed("m<channel|>!<turn|>");
  EXPECT_EQ(d.reasoning, "m");
  EXPECT_EQ(d.content, "!");
  EXPECT_TRUE(stream.ended());
  EXPECT_TRUE(stream.feed("after the end").empty());
}

TEST(ChatOutput, NeverThrowsOnRandomMarkerSoup) {
  const std::vector<std::string> atoms = {"<|channel>", "<channel|>", "thought\n", "<|tool_call>", "<tool_call|>", "call:",
                                          "f",          "{",          "}",         "[",            "]",            ":",
                                          ",",          "<|\"|>",     "1.5",       "x",            " ",            "\n",
                                          "<turn|>",    "<eos>",      "<|tool_response>", "None", "-", "e", "\xff", "<|"};
  std::mt19937 rng(99);
  for (int trial = 0; trial < 3000; ++trial) {
    std::string text;
    const int n = std::uniform_int_distribution<int>(0, 40)(rng);
    for (int i = 0; i < n; ++i) text += atoms[std::uniform_int_distribution<size_t>(0, atoms.size() - 1)(rng)];
    ChatOutput out;
    EXPECT_NO_THROW(out = parse_chat_output(text)) << text;
    ChatOutputStream stream;
    std::vector<std::string> pieces;
    for (size_t i = 0; i < text.size(); i += 3) pieces.push_back(text.substr(i, 3));
    expect_same(collect(stream, pieces), out);
  }
}

}  // namespace
}  // namespace shardlm
