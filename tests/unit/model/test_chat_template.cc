// The native Gemma 4 chat template renderer: prompts derived by hand from the official template
// text (tests/data/chat_template/gemma-4-31B-it.jinja), Python value formatting (values checked
// against CPython's repr / str.strip), and the errors for malformed conversations. Byte parity with
// real Jinja engines on whole conversations is the integration test chat_template_parity.
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "common/error.h"
#include "model/chat_template.h"
#include "model/chat_template_jinja.h"

namespace shardlm {
namespace {

using nlohmann::json;

const std::string kEmptyThought = "<|channel>thought\n<channel|>";

std::string render(const json& messages, ChatOptions options = {}) { return render_chat(messages, options); }

TEST(ChatTemplate, SingleUserMessage) {
  EXPECT_EQ(render(json::parse(R"([{"role":"user","content":" Hi \n"}])")),
            "<bos><|turn>user\nHi<turn|>\n<|turn>model\n" + kEmptyThought);
}

TEST(ChatTemplate, ThinkingOpensASystemTurnAndDropsTheEmptyThought) {
  ChatOptions options;
  options.enable_thinking = true;
  EXPECT_EQ(render(json::parse(R"([{"role":"user","content":"Hi"}])"), options),
            "<bos><|turn>system\n<|think|>\n<turn|>\n<|turn>user\nHi<turn|>\n<|turn>model\n");
}

TEST(ChatTemplate, SystemAndDeveloperRoles) {
  const json messages = json::parse(R"([{"role":"developer","content":"Rules."},{"role":"user","content":"Q"},
    {"role":"assistant","content":"A"},{"role":"system","content":"Late"}])");
  ChatOptions options;
  options.add_generation_prompt = false;
  EXPECT_EQ(render(messages, options),
            "<bos><|turn>system\nRules.<turn|>\n<|turn>user\nQ<turn|>\n<|turn>model\nA<turn|>\n"
            "<|turn>system\nLate<turn|>\n");
}

TEST(ChatTemplate, E2bStyleOmitsTheEmptyThoughtBlock) {
  ChatOptions options;
  options.empty_thought_block = false;
  EXPECT_EQ(render(json::parse(R"([{"role":"user","content":"Hi"}])"), options),
            "<bos><|turn>user\nHi<turn|>\n<|turn>model\n");
}

TEST(ChatTemplate, ModelHistoryLosesThoughtBlocks) {
  const json messages = json::parse(R"([{"role":"user","content":"Q"},
    {"role":"assistant","content":"x<|channel>thought\nhidden<channel|> y "}])");
  ChatOptions options;
  options.add_generation_prompt = false;
  EXPECT_EQ(render(messages, options), "<bos><|turn>user\nQ<turn|>\n<|turn>model\nx y<turn|>\n");
}

// continue_final_message: the prompt ends right after the assistant's text, as transformers cuts it
// (the template trims the text; leading spaces are dropped, trailing ones the template dropped too).
TEST(ChatTemplate, ContinueFinalMessageEndsAfterTheAssistantsText) {
  ChatOptions options;
  options.add_generation_prompt = false;
  const auto cont = [&](const json& messages) { return continue_final_message(render(messages, options), messages); };
  const std::string head = "<bos><|turn>user\nCapital of France?<turn|>\n<|turn>model\n";
  EXPECT_EQ(cont(json::parse(R"([{"role":"user","content":"Capital of France?"},{"role":"assistant","content":"It is"}])")),
            head + "It is");
  EXPECT_EQ(cont(json::parse(R"([{"role":"user","content":"Capital of France?"},{"role":"assistant","content":"  It is "}])")),
            head + "It is");
  EXPECT_EQ(cont(json::parse(R"([{"role":"user","content":"Capital of France?"},
    {"role":"assistant","content":[{"type":"text","text":"One"},{"type":"text","text":"It is"}]}])")),
            head + "OneIt is");
  // Short texts are found before the turn's closing marker, not inside it.
  for (const char* text : {"<", "n", ">", "turn", "|>"}) {
    json m = json::parse(R"([{"role":"user","content":"Give XML"}])");
    m.push_back({{"role", "assistant"}, {"content", text}});
    EXPECT_EQ(cont(m), "<bos><|turn>user\nGive XML<turn|>\n<|turn>model\n" + std::string(text)) << text;
  }
  // "It is" also appears earlier: the last occurrence is the message's.
  EXPECT_EQ(cont(json::parse(R"([{"role":"user","content":"It is"},{"role":"assistant","content":"It is"}])")),
            "<bos><|turn>user\nIt is<turn|>\n<|turn>model\nIt is");
  const auto error_of = [&](const char* text) {
    try {
      cont(json::parse(text));
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_EQ(error_of(R"([{"role":"user","content":"Q"}])"),
            "continue_final_message: the last message (messages[0]) must be the assistant's");
  EXPECT_EQ(error_of(R"([{"role":"user","content":"Q"},{"role":"assistant","content":"  "}])"),
            "continue_final_message: the last message holds no text to continue");
  EXPECT_EQ(error_of(R"([{"role":"user","content":"Q"},{"role":"assistant","content":"a<|channel>thought\nb<channel|>c"}])"),
            "continue_final_message: the chat template dropped the last message's text");
}

TEST(ChatTemplate, ToolCallArgumentsSortedCaseInsensitivelyWithUnescapedKeys) {
  const json messages = json::parse(R"([{"role":"user","content":"Q"},{"role":"assistant","tool_calls":[
    {"id":"1","type":"function","function":{"name":"f",
     "arguments":"{\"b\":\"x\",\"a\":1,\"C\":{\"z\":true,\"Y\":[1,\"s\",false]}}"}}]}])");
  ChatOptions options;
  options.add_generation_prompt = false;
  EXPECT_EQ(render(messages, options),
            "<bos><|turn>user\nQ<turn|>\n<|turn>model\n"
            "<|tool_call>call:f{a:1,b:<|\"|>x<|\"|>,C:{Y:[1,<|\"|>s<|\"|>,false],z:true}}<tool_call|><turn|>\n");
}

TEST(ChatTemplate, ArgumentValuesPrintLikePython) {
  const json messages = json::parse(R"([{"role":"user","content":"Q"},{"role":"assistant","tool_calls":[
    {"function":{"name":"f","arguments":{"n":null,"one":1.0,"tiny":0.00001,"big":1e16,"neg":-0.0}}}]}])");
  ChatOptions options;
  options.add_generation_prompt = false;
  EXPECT_EQ(render(messages, options),
            "<bos><|turn>user\nQ<turn|>\n<|turn>model\n"
            "<|tool_call>call:f{big:1e+16,n:None,neg:-0.0,one:1.0,tiny:1e-05}<tool_call|><turn|>\n");
}

TEST(ChatTemplate, ToolMessagesFoldIntoTheModelTurn) {
  const json messages = json::parse(R"([{"role":"user","content":"Q"},
    {"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"get","arguments":"{}"}},
                                      {"id":"c2","type":"function","function":{"name":"put","arguments":"{}"}}]},
    {"role":"tool","tool_call_id":"c2","content":"done"},
    {"role":"tool","tool_call_id":"c1","content":{"k":2}}])");
  EXPECT_EQ(render(messages),
            "<bos><|turn>user\nQ<turn|>\n<|turn>model\n"
            "<|tool_call>call:get{}<tool_call|><|tool_call>call:put{}<tool_call|>"
            "<|tool_response>response:put{value:<|\"|>done<|\"|>}<tool_response|>"
            "<|tool_response>response:get{k:2}<tool_response|>" +
                kEmptyThought);
}

TEST(ChatTemplate, UnfoldedToolMessagesAreToolTurns) {
  const json messages = json::parse(R"([{"role":"user","content":"Q"},
    {"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"get","arguments":"{}"}}]},
    {"role":"tool","tool_call_id":"c1","content":" r "}])");
  ChatOptions options;
  options.fold_tool_messages = false;
  EXPECT_EQ(render(messages, options),
            "<bos><|turn>user\nQ<turn|>\n<|turn>model\n<|tool_call>call:get{}<tool_call|><turn|>\n"
            "<|turn>tool\nr<turn|>\n<|turn>model\n" +
                kEmptyThought);
}

TEST(ChatTemplate, ToolDeclaration) {
  ChatOptions options;
  options.tools = json::parse(R"([{"type":"function","function":{"name":"w","description":"Weather",
    "parameters":{"type":"object","required":["city"],"properties":{
      "city":{"type":"string","description":"City"},
      "unit":{"type":"string","enum":["c","f"]},
      "n":{"type":"integer","nullable":true}}}}}])");
  EXPECT_EQ(render(json::parse(R"([{"role":"user","content":"Q"}])"), options),
            "<bos><|turn>system\n<|tool>declaration:w{description:<|\"|>Weather<|\"|>,parameters:{properties:{"
            "city:{description:<|\"|>City<|\"|>,type:<|\"|>STRING<|\"|>},"
            "n:{nullable:true,type:<|\"|>INTEGER<|\"|>},"
            "unit:{enum:[<|\"|>c<|\"|>,<|\"|>f<|\"|>],type:<|\"|>STRING<|\"|>}},"
            "required:[<|\"|>city<|\"|>],type:<|\"|>OBJECT<|\"|>}}<tool|><turn|>\n"
            "<|turn>user\nQ<turn|>\n<|turn>model\n" +
                kEmptyThought);
}

TEST(ChatTemplate, ReasoningOnlyOnToolCallsAfterTheLastUserMessage) {
  const json messages = json::parse(R"([{"role":"user","content":"Q"},
    {"role":"assistant","reasoning_content":"R1","content":"A"},
    {"role":"assistant","reasoning_content":"R2","tool_calls":[{"function":{"name":"f","arguments":{}}}]}])");
  ChatOptions options;
  options.add_generation_prompt = false;
  EXPECT_EQ(render(messages, options),
            "<bos><|turn>user\nQ<turn|>\n<|turn>model\nA<turn|>\n"
            "<|turn>model\n<|channel>thought\nR2<channel|><|tool_call>call:f{}<tool_call|><turn|>\n");
}

TEST(ChatTemplate, NormalizeJoinsLeadingSystemTextParts) {
  const json out = normalize_chat_messages(json::parse(
      R"([{"role":"system","content":[{"type":"text","text":" a "},{"type":"text","text":"b"}]},{"role":"user","content":"x"}])"));
  EXPECT_EQ(out[0]["content"], "ab");
}

struct BadInput {
  const char* messages;
  const char* error;
};

TEST(ChatTemplate, MalformedConversationsNameTheField) {
  const BadInput cases[] = {
      {R"({"role":"user"})", "messages must be a JSON array"},
      {R"([])", "messages is empty"},
      {R"(["hi"])", "messages[0] must be an object"},
      {R"([{"content":"x"}])", "messages[0].role is missing"},
      {R"([{"role":"user","content":"x"},{"role":"robot","content":"y"}])", "messages[1].role 'robot' is not one of"},
      {R"([{"role":"user","content":42}])", "messages[0].content must be a string"},
      {R"([{"role":"user","content":{"a":1}}])", "messages[0].content must be a string"},
      {R"([{"role":"user","content":[{"type":"image_url"}]}])", "messages[0].content[0]: unsupported content part type 'image_url'"},
      {R"([{"role":"user","content":[{"type":"text","text":5}]}])", "messages[0].content[0].text"},
      {R"([{"role":"system"},{"role":"user","content":"x"}])", "messages[0].content: the leading system message"},
      {R"([{"role":"user","content":"x","tool_calls":[{"function":{"name":"f"}}]}])", "messages[0].tool_calls: only assistant"},
      {R"([{"role":"assistant","tool_calls":{"function":{"name":"f"}}}])", "messages[0].tool_calls must be an array"},
      {R"([{"role":"assistant","tool_calls":[{"function":{"arguments":"{}"}}]}])", "messages[0].tool_calls[0].function.name"},
      {R"([{"role":"assistant","tool_calls":[{"function":{"name":"f","arguments":"{oops"}}]}])",
       "messages[0].tool_calls[0].function.arguments is not valid JSON: {oops"},
      {R"([{"role":"assistant","tool_calls":[{"function":{"name":"f","arguments":"{\"a\":123456789012345678901234567890}"}}]}])",
       "messages[0].tool_calls[0].function.arguments: [json.exception.parse_error.101] parse error at byte 6: the integer "
       "123456789012345678901234567890 does not fit in 64 bits"},
      {R"([{"role":"assistant","tool_calls":[{"function":{"name":"f","arguments":"[1,2]"}}]}])",
       "messages[0].tool_calls[0].function.arguments must hold a JSON object, not array"},
      {R"([{"role":"assistant","tool_calls":[{"function":{"name":"f","arguments":7}}]}])",
       "messages[0].tool_calls[0].function.arguments must be a JSON object or a string"},
      {R"([{"role":"assistant","content":"x","reasoning_content":["r"]}])", "messages[0].reasoning_content must be a string"},
      {R"([{"role":"user","content":"x"},{"role":"tool","tool_call_id":"1","content":"r"}])",
       "messages[1]: a tool message must follow an assistant message with tool_calls"},
      {R"([{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"a","function":{"name":"f"}}]},
          {"role":"tool","tool_call_id":"zz","content":"r"}])",
       "messages[2]: tool_call_id \"zz\" matches no tool call of messages[1]"},
      {R"([{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"function":{"name":"f"}}]},{"role":"tool","content":"r"}])",
       "messages[2]: a tool message needs a tool_call_id"},
      {R"([{"role":"assistant","tool_responses":[{"name":3}]}])", "messages[0].tool_responses[0].name must be a string"},
  };
  for (const BadInput& c : cases) {
    SCOPED_TRACE(c.messages);
    try {
      render(json::parse(c.messages));
      ADD_FAILURE() << "no error, expected: " << c.error;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(c.error), std::string::npos) << e.what();
    }
  }
}

TEST(ChatTemplate, MalformedToolsNameTheField) {
  const json user = json::parse(R"([{"role":"user","content":"x"}])");
  const BadInput cases[] = {
      {R"({"name":"f"})", "tools must be an array"},
      {R"(["f"])", "tools[0] must be an object"},
      {R"([{"type":"function","name":"f"}])", "tools[0].function is missing"},
      {R"([{"type":"function","function":{"description":"d"}}])", "tools[0].function.name"},
      {R"([{"function":{"name":"f","parameters":{"type":"object","properties":["a"]}}}])",
       "tools[0].function.parameters.properties must be an object"},
      {R"([{"function":{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"object","required":5}}}}}])",
       "tools[0].function.parameters.properties.a.required must be a list"},
  };
  for (const BadInput& c : cases) {
    SCOPED_TRACE(c.messages);
    ChatOptions options;
    options.tools = json::parse(c.messages);
    try {
      render(user, options);
      ADD_FAILURE() << "no error, expected: " << c.error;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(c.error), std::string::npos) << e.what();
    }
  }
}

TEST(ChatTemplate, DeepNestingIsAnErrorNotACrash) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  json messages = json::array();
  messages.push_back({{"role", "user"}, {"content", "x"}});
  messages.push_back({{"role", "assistant"},
                      {"tool_calls", json::array({{{"function", {{"name", "f"}, {"arguments", "{\"a\":" + deep + "}"}}}}})}});
  try {
    render(messages);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("messages[1] nests JSON deeper than"), std::string::npos) << e.what();
  }
  ChatOptions options;
  options.tools = json::parse("[{\"function\":{\"name\":\"f\",\"parameters\":" + std::string(500, '[') +
                              std::string(500, ']') + "}}]");
  EXPECT_THROW(render(json::parse(R"([{"role":"user","content":"x"}])"), options), Error);
}

// The literal pieces the renderer writes must still be in the official template.
TEST(ChatTemplate, OfficialTemplateHoldsTheRenderedMarkers) {
  std::ifstream in(std::string(SHARDLM_TEST_DATA) + "/chat_template/gemma-4-31B-it.jinja");
  ASSERT_TRUE(in) << "official template missing";
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string t = ss.str();
  for (const char* piece : {"{{- bos_token }}", "'<|turn>system\\n'", "'<|think|>\\n'", "'<|tool>'", "'<tool|>'",
                            "'<turn|>\\n'", "'<|turn>' + role + '\\n'", "'<|channel>thought\\n<channel|>'",
                            "'<|tool_call>call:' + function['name'] + '{'", "'}<tool_call|>'",
                            "'<|tool_response>'", "'<tool_response|>'", "nullable:true", ",properties:{", ",items:{",
                            "'description', 'type', 'properties', 'required', 'nullable'", "| dictsort",
                            "response:' + tool_response['name'] | default('unknown')", "'{value:'"}) {
    EXPECT_NE(t.find(piece), std::string::npos) << piece;
  }
}

TEST(ChatTemplateJinja, FloatReprMatchesPython) {
  const std::pair<double, const char*> cases[] = {
      {1.0, "1.0"},         {0.1, "0.1"},           {1e-05, "1e-05"},         {0.0001, "0.0001"},
      {1e16, "1e+16"},      {1e15, "1000000000000000.0"}, {123456789.123, "123456789.123"},
      {-2.5e-07, "-2.5e-07"}, {1.5e300, "1.5e+300"}, {5e-324, "5e-324"},       {0.1 + 0.2, "0.30000000000000004"},
      {1.7976931348623157e308, "1.7976931348623157e+308"}, {12345678901234567.0, "1.2345678901234568e+16"},
      {-0.0, "-0.0"},       {100.0, "100.0"},        {2.5, "2.5"}};
  for (const auto& [value, expected] : cases) EXPECT_EQ(jinja::float_repr(value), expected) << expected;
}

TEST(ChatTemplateJinja, StrAndReprMatchPython) {
  EXPECT_EQ(jinja::repr(json("it's")), "\"it's\"");
  EXPECT_EQ(jinja::repr(json("a\"b")), "'a\"b'");
  EXPECT_EQ(jinja::repr(json("both ' \"")), "'both \\' \"'");
  EXPECT_EQ(jinja::repr(json("tab\t\x01\\")), "'tab\\t\\x01\\\\'");
  const json list = json::parse(R"(["STRING", null, true, 1.0, {"k": "v"}])");
  EXPECT_EQ(jinja::to_str(&list), "['STRING', None, True, 1.0, {'k': 'v'}]");
  EXPECT_EQ(jinja::to_str(nullptr), "");
  const json big = json::parse("18446744073709551615");
  EXPECT_EQ(jinja::to_str(&big), "18446744073709551615");
}

TEST(ChatTemplateJinja, StripUsesPythonWhitespace) {
  EXPECT_EQ(jinja::strip(" \xe3\x80\x80x\xc2\xa0\xe2\x80\xa8 "), "x");        // U+3000, U+00A0, U+2028
  EXPECT_EQ(jinja::strip("\xef\xbb\xbfx\xef\xbb\xbf"), "\xef\xbb\xbfx\xef\xbb\xbf");  // U+FEFF is not space
  EXPECT_EQ(jinja::strip("\x1cx\xc2\x85"), "x");                               // U+001C, U+0085 are
  EXPECT_EQ(jinja::strip("  \n"), "");
  EXPECT_EQ(jinja::strip("\xff a \xff"), "\xff a \xff");  // invalid UTF-8 is kept
}

TEST(ChatTemplateJinja, DictsortIsCaseInsensitive) {
  const json m = json::parse(R"({"b":1,"A":2,"c":3,"_x":4})");
  std::string keys;
  for (const auto& [k, v] : jinja::dictsort(m)) keys += k + ",";
  EXPECT_EQ(keys, "_x,A,b,c,");
}

TEST(ChatTemplateJinja, TruthinessIsPython) {
  for (const char* falsy : {"null", "false", "0", "0.0", "\"\"", "[]", "{}"}) {
    const json v = json::parse(falsy);
    EXPECT_FALSE(jinja::truthy(&v)) << falsy;
  }
  for (const char* t : {"true", "-1", "0.5", "\" \"", "[0]", "{\"a\":null}"}) {
    const json v = json::parse(t);
    EXPECT_TRUE(jinja::truthy(&v)) << t;
  }
  EXPECT_FALSE(jinja::truthy(nullptr));
}

}  // namespace
}  // namespace shardlm
