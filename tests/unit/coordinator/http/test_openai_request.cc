#include <gtest/gtest.h>

#include <map>
#include <string>

#include "coordinator/http/api_error.h"
#include "coordinator/http/openai_request.h"

namespace shardlm::http {
namespace {

using nlohmann::json;

json chat_body() {
  return json{{"model", "tiny"}, {"messages", json::array({{{"role", "user"}, {"content", "Hi"}}})}};
}

json completion_body() { return json{{"model", "tiny"}, {"prompt", "Once upon"}}; }

// The ApiError a parse throws (fails the test when it does not throw).
ApiError chat_error(const json& body) {
  try {
    parse_chat_request(body);
  } catch (const ApiException& e) {
    return e.error();
  }
  ADD_FAILURE() << "accepted: " << body.dump();
  return {};
}

ApiError completion_error(const json& body) {
  try {
    parse_completion_request(body);
  } catch (const ApiException& e) {
    return e.error();
  }
  ADD_FAILURE() << "accepted: " << body.dump();
  return {};
}

json with(json body, const std::string& key, json value) {
  body[key] = std::move(value);
  return body;
}

TEST(OpenAIRequest, JsonBodyMustBeAnObject) {
  EXPECT_TRUE(parse_json_body("{\"a\": 1}").is_object());
  for (const char* bad : {"", "{", "{\"a\": }", "[1, 2]", "\"text\"", "12", "{\"a\": 1} trailing", "\xff\xfe"}) {
    try {
      parse_json_body(bad);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const ApiException& e) {
      EXPECT_EQ(e.error().status, 400);
      EXPECT_EQ(e.error().type, "invalid_request_error");
    }
  }
  try {
    parse_json_body("{\"a\":");
  } catch (const ApiException& e) {
    EXPECT_NE(std::string(e.what()).find("not valid JSON"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("[json.exception"), std::string::npos) << e.what();
  }
}

TEST(OpenAIRequest, MinimalChatHasOpenAIDefaults) {
  OpenAIRequest r = parse_chat_request(chat_body());
  EXPECT_EQ(r.endpoint, Endpoint::kChat);
  EXPECT_EQ(r.model, "tiny");
  EXPECT_FALSE(r.stream);
  EXPECT_FALSE(r.include_usage);
  EXPECT_FALSE(r.seed_given);
  EXPECT_TRUE(r.text.chat);
  EXPECT_EQ(r.text.messages, chat_body()["messages"]);
  EXPECT_TRUE(r.text.tools.is_null());
  EXPECT_FALSE(r.text.enable_thinking);
  EXPECT_EQ(r.text.max_tokens, -1);
  EXPECT_FLOAT_EQ(r.text.sampling.temperature, 1.0f);
  EXPECT_FLOAT_EQ(r.text.sampling.top_p, 1.0f);
  EXPECT_EQ(r.text.sampling.top_k, 0);
  EXPECT_FLOAT_EQ(r.text.sampling.min_p, 0.0f);
  // None given: the model's defaults apply to all (TextService).
  EXPECT_FALSE(r.text.sampling_given.temperature || r.text.sampling_given.top_k || r.text.sampling_given.top_p ||
               r.text.sampling_given.min_p);
  EXPECT_TRUE(r.text.stop.empty());
  EXPECT_EQ(r.text.top_logprobs, -1);
  EXPECT_FALSE(r.text.ignore_eos);
}

TEST(OpenAIRequest, EveryChatFieldIsCarriedOver) {
  json b = chat_body();
  b["messages"] = json::array({{{"role", "system"}, {"content", "Be brief."}},
                               {{"role", "developer"}, {"content", json::array({{{"type", "text"}, {"text", "Rule"}}})}},
                               {{"role", "user"}, {"content", json::array({{{"type", "text"}, {"text", "Weather?"}}})}},
                               {{"role", "assistant"},
                                {"content", nullptr},
                                {"tool_calls", json::array({{{"id", "call_1"}, {"type", "function"},
                                                             {"function", {{"name", "get_weather"}, {"arguments", "{}"}}}}})}},
                               {{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "sunny"}}});
  b["max_tokens"] = 32;
  b["temperature"] = 0.5;
  b["top_p"] = 0.9;
  b["top_k"] = 40;
  b["min_p"] = 0.05;
  b["seed"] = 1234;
  b["stop"] = json::array({"END", "\n\n"});
  b["n"] = 1;
  b["stream"] = true;
  b["stream_options"] = {{"include_usage", true}};
  b["logprobs"] = true;
  b["top_logprobs"] = 3;
  b["ignore_eos"] = true;
  b["tools"] = json::array({{{"type", "function"}, {"function", {{"name", "get_weather"}, {"parameters", json::object()}}}}});
  b["tool_choice"] = "auto";
  b["chat_template_kwargs"] = {{"enable_thinking", true}};
  b["response_format"] = {{"type", "text"}};
  b["user"] = "someone";
  b["parallel_tool_calls"] = true;
  b["frequency_penalty"] = 0;
  b["presence_penalty"] = 0.0;
  b["logit_bias"] = json::object();
  OpenAIRequest r = parse_chat_request(b);
  EXPECT_EQ(r.text.messages, b["messages"]);
  EXPECT_EQ(r.text.max_tokens, 32);
  EXPECT_FLOAT_EQ(r.text.sampling.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r.text.sampling.top_p, 0.9f);
  EXPECT_EQ(r.text.sampling.top_k, 40);
  EXPECT_FLOAT_EQ(r.text.sampling.min_p, 0.05f);
  EXPECT_EQ(r.text.sampling.seed, 1234u);
  EXPECT_TRUE(r.seed_given);
  EXPECT_TRUE(r.text.sampling_given.temperature && r.text.sampling_given.top_k && r.text.sampling_given.top_p &&
              r.text.sampling_given.min_p);
  const OpenAIRequest only_k = parse_chat_request(with(chat_body(), "top_k", -1));
  EXPECT_TRUE(only_k.text.sampling_given.top_k);
  EXPECT_FALSE(only_k.text.sampling_given.temperature || only_k.text.sampling_given.top_p || only_k.text.sampling_given.min_p);
  EXPECT_FALSE(parse_chat_request(with(chat_body(), "temperature", nullptr)).text.sampling_given.temperature);  // null: not given
  EXPECT_EQ(r.text.stop, (std::vector<std::string>{"END", "\n\n"}));
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(r.text.top_logprobs, 3);
  EXPECT_TRUE(r.text.ignore_eos);
  EXPECT_EQ(r.text.tools, b["tools"]);
  EXPECT_TRUE(r.text.enable_thinking);
}

TEST(OpenAIRequest, MaxCompletionTokensWinsOverMaxTokens) {
  EXPECT_EQ(parse_chat_request(with(chat_body(), "max_completion_tokens", 7)).text.max_tokens, 7);
  json b = with(chat_body(), "max_tokens", 9);
  b["max_completion_tokens"] = 5;
  EXPECT_EQ(parse_chat_request(b).text.max_tokens, 5);
  EXPECT_EQ(parse_chat_request(with(chat_body(), "max_tokens", nullptr)).text.max_tokens, -1);
  EXPECT_EQ(parse_chat_request(with(chat_body(), "max_tokens", 16.0)).text.max_tokens, 16);  // integral float
}

TEST(OpenAIRequest, NullFieldsMeanAbsent) {
  json b = chat_body();
  for (const char* key : {"temperature", "top_p", "top_k", "min_p", "seed", "stop", "n", "stream", "stream_options",
                          "logprobs", "top_logprobs", "tools", "tool_choice", "max_tokens", "reasoning_effort",
                          "chat_template_kwargs", "response_format", "frequency_penalty", "logit_bias"}) {
    b[key] = nullptr;
  }
  OpenAIRequest r = parse_chat_request(b);
  EXPECT_EQ(r.text.max_tokens, -1);
  EXPECT_FALSE(r.seed_given);
  EXPECT_EQ(r.text.top_logprobs, -1);
}

TEST(OpenAIRequest, StopAsStringOrArray) {
  EXPECT_EQ(parse_chat_request(with(chat_body(), "stop", "###")).text.stop, std::vector<std::string>{"###"});
  json sixteen = json::array();
  for (int i = 0; i < 16; ++i) sixteen.push_back("s" + std::to_string(i));
  EXPECT_EQ(parse_chat_request(with(chat_body(), "stop", sixteen)).text.stop.size(), 16u);
  EXPECT_TRUE(parse_chat_request(with(chat_body(), "stop", json::array())).text.stop.empty());

  sixteen.push_back("one too many");
  ApiError e = chat_error(with(chat_body(), "stop", sixteen));
  EXPECT_EQ(e.param, "stop");
  EXPECT_NE(e.message.find("at most 16"), std::string::npos) << e.message;
  EXPECT_EQ(chat_error(with(chat_body(), "stop", "")).param, "stop");
  EXPECT_EQ(chat_error(with(chat_body(), "stop", json::array({"a", 3}))).param, "stop[1]");
  EXPECT_EQ(chat_error(with(chat_body(), "stop", json::array({"a", ""}))).param, "stop[1]");
  EXPECT_EQ(chat_error(with(chat_body(), "stop", 5)).param, "stop");
}

TEST(OpenAIRequest, SamplingFieldsAreChecked) {
  EXPECT_FLOAT_EQ(parse_chat_request(with(chat_body(), "temperature", 0)).text.sampling.temperature, 0.0f);
  EXPECT_FLOAT_EQ(parse_chat_request(with(chat_body(), "temperature", 2.5)).text.sampling.temperature, 2.5f);
  EXPECT_EQ(parse_chat_request(with(chat_body(), "top_k", -1)).text.sampling.top_k, 0);  // vLLM's "off"
  EXPECT_EQ(parse_chat_request(with(chat_body(), "seed", -1)).text.sampling.seed, ~0ull);
  EXPECT_EQ(parse_chat_request(with(chat_body(), "seed", 18446744073709551615ull)).text.sampling.seed, ~0ull);

  struct Case {
    const char* field;
    json value;
  };
  for (const Case& c : {Case{"temperature", -0.1}, Case{"temperature", "hot"}, Case{"top_p", 0}, Case{"top_p", 1.5},
                        Case{"top_p", true}, Case{"top_k", -2}, Case{"top_k", 1.5}, Case{"top_k", 100000},
                        Case{"min_p", -0.5}, Case{"min_p", 2}, Case{"seed", 1.5}, Case{"seed", "42"},
                        Case{"max_tokens", 0}, Case{"max_tokens", -5}, Case{"max_tokens", "10"}, Case{"max_tokens", 2.5},
                        Case{"max_tokens", 1e12}, Case{"max_completion_tokens", 0}}) {
    ApiError e = chat_error(with(chat_body(), c.field, c.value));
    EXPECT_EQ(e.status, 400) << c.field;
    EXPECT_EQ(e.type, "invalid_request_error");
    EXPECT_EQ(e.param, c.field) << c.value.dump();
    EXPECT_NE(e.message.find(c.field), std::string::npos) << e.message;
  }
}

TEST(OpenAIRequest, Choices) {
  EXPECT_EQ(parse_chat_request(chat_body()).text.n, 1);
  EXPECT_EQ(parse_chat_request(with(chat_body(), "n", 1)).text.n, 1);
  EXPECT_EQ(parse_chat_request(with(chat_body(), "n", 4)).text.n, 4);
  EXPECT_EQ(parse_completion_request(with(completion_body(), "n", 128)).text.n, 128);
  ApiError e = chat_error(with(chat_body(), "n", 129));
  EXPECT_EQ(e.param, "n");
  EXPECT_NE(e.message.find("128"), std::string::npos) << e.message;
  EXPECT_EQ(chat_error(with(chat_body(), "n", 0)).param, "n");
  EXPECT_EQ(chat_error(with(chat_body(), "n", "2")).param, "n");
  // best_of (completions): that many generated, n returned; ranked by the sampled tokens'
  // log-probabilities, computed for it when the request asked for none.
  const OpenAIRequest best = parse_completion_request(with(with(completion_body(), "best_of", 5), "n", 2));
  EXPECT_EQ(best.text.n, 5);
  EXPECT_EQ(best.best_of_returned, 2);
  EXPECT_EQ(best.text.top_logprobs, 0);
  EXPECT_TRUE(best.logprobs_hidden);
  const OpenAIRequest best_lp = parse_completion_request(with(with(completion_body(), "best_of", 3), "logprobs", 2));
  EXPECT_EQ(best_lp.text.n, 3);
  EXPECT_EQ(best_lp.best_of_returned, 1);
  EXPECT_EQ(best_lp.text.top_logprobs, 2);
  EXPECT_FALSE(best_lp.logprobs_hidden);
  const OpenAIRequest same = parse_completion_request(with(with(completion_body(), "best_of", 2), "n", 2));
  EXPECT_EQ(same.text.n, 2);
  EXPECT_EQ(same.best_of_returned, 0);
  EXPECT_EQ(same.text.top_logprobs, -1);
  ApiError fewer = completion_error(with(with(completion_body(), "best_of", 2), "n", 3));
  EXPECT_EQ(fewer.param, "best_of");
  EXPECT_NE(fewer.message.find("at least n"), std::string::npos) << fewer.message;
  EXPECT_EQ(completion_error(with(completion_body(), "best_of", 129)).param, "best_of");
  EXPECT_EQ(completion_error(with(completion_body(), "best_of", 0)).param, "best_of");
  ApiError streamed = completion_error(with(with(completion_body(), "best_of", 2), "stream", true));
  EXPECT_EQ(streamed.param, "best_of");
  EXPECT_NE(streamed.message.find("cannot be streamed"), std::string::npos) << streamed.message;
}

TEST(OpenAIRequest, ModelIsRequired) {
  json b = chat_body();
  b.erase("model");
  EXPECT_EQ(chat_error(b).param, "model");
  EXPECT_EQ(chat_error(with(chat_body(), "model", "")).param, "model");
  EXPECT_EQ(chat_error(with(chat_body(), "model", 7)).param, "model");
  json c = completion_body();
  c.erase("model");
  EXPECT_EQ(completion_error(c).param, "model");
}

TEST(OpenAIRequest, MessagesAreChecked) {
  json b = chat_body();
  b.erase("messages");
  EXPECT_EQ(chat_error(b).param, "messages");
  EXPECT_EQ(chat_error(with(chat_body(), "messages", json::array())).param, "messages");
  EXPECT_EQ(chat_error(with(chat_body(), "messages", "hello")).param, "messages");
  EXPECT_EQ(chat_error(with(chat_body(), "messages", json::array({"hello"}))).param, "messages[0]");
  EXPECT_EQ(chat_error(with(chat_body(), "messages", json::array({{{"content", "x"}}}))).param, "messages[0].role");
  ApiError role = chat_error(with(chat_body(), "messages", json::array({{{"role", "wizard"}, {"content", "x"}}})));
  EXPECT_EQ(role.param, "messages[0].role");
  EXPECT_NE(role.message.find("wizard"), std::string::npos);
  EXPECT_EQ(chat_error(with(chat_body(), "messages", json::array({{{"role", "user"}, {"content", 5}}}))).param,
            "messages[0].content");
  EXPECT_EQ(chat_error(with(chat_body(), "messages", json::array({{{"role", "user"}, {"content", {{"a", 1}}}}}))).param,
            "messages[0].content");
  json image = json::array({{{"role", "user"},
                             {"content", json::array({{{"type", "text"}, {"text", "see"}},
                                                      {{"type", "image_url"}, {"image_url", {{"url", "x"}}}}})}}});
  ApiError img = chat_error(with(chat_body(), "messages", image));
  EXPECT_EQ(img.param, "messages[0].content[1].type");
  EXPECT_NE(img.message.find("only text"), std::string::npos);
  json no_text = json::array({{{"role", "user"}, {"content", json::array({{{"type", "text"}}})}}});
  EXPECT_EQ(chat_error(with(chat_body(), "messages", no_text)).param, "messages[0].content[0].text");
  // A tool message may carry a structured (object) result; null content is fine.
  json ok = json::array({{{"role", "user"}, {"content", nullptr}}, {{"role", "tool"}, {"content", {{"temp", 20}}}}});
  EXPECT_NO_THROW(parse_chat_request(with(chat_body(), "messages", ok)));
}

TEST(OpenAIRequest, ToolsAndToolChoice) {
  json tools = json::array({{{"type", "function"}, {"function", {{"name", "a"}, {"description", "A"}}}},
                            {{"type", "function"}, {"function", {{"name", "b"}, {"parameters", {{"type", "object"}}}}}}});
  json b = with(chat_body(), "tools", tools);
  EXPECT_EQ(parse_chat_request(b).text.tools, tools);
  EXPECT_EQ(parse_chat_request(with(b, "tool_choice", "auto")).text.tools, tools);
  EXPECT_EQ(parse_chat_request(with(b, "tool_choice", "required")).text.tools, tools);
  EXPECT_TRUE(parse_chat_request(with(b, "tool_choice", "none")).text.tools.is_null());
  json named = {{"type", "function"}, {"function", {{"name", "b"}}}};
  EXPECT_EQ(parse_chat_request(with(b, "tool_choice", named)).text.tools, json::array({tools[1]}));
  // "required" and a named function force the call (TextRequest::tool_choice); auto and none do not.
  EXPECT_EQ(parse_chat_request(b).text.tool_choice, "");
  EXPECT_EQ(parse_chat_request(with(b, "tool_choice", "auto")).text.tool_choice, "");
  EXPECT_EQ(parse_chat_request(with(b, "tool_choice", "none")).text.tool_choice, "");
  EXPECT_EQ(parse_chat_request(with(b, "tool_choice", "required")).text.tool_choice, "required");
  EXPECT_EQ(parse_chat_request(with(b, "tool_choice", named)).text.tool_choice_function, "b");
  EXPECT_EQ(parse_chat_request(with(b, "tool_choice", named)).text.tool_choice, "");
  EXPECT_TRUE(parse_chat_request(with(chat_body(), "tools", json::array())).text.tools.is_null());

  EXPECT_EQ(chat_error(with(b, "tool_choice", "always")).param, "tool_choice");
  EXPECT_EQ(chat_error(with(b, "tool_choice", 3)).param, "tool_choice");
  EXPECT_EQ(chat_error(with(b, "tool_choice", {{"type", "function"}, {"function", {{"name", "zzz"}}}})).param,
            "tool_choice.function.name");
  EXPECT_EQ(chat_error(with(b, "tool_choice", {{"type", "function"}})).param, "tool_choice.function.name");
  EXPECT_EQ(chat_error(with(b, "tool_choice", {{"type", "other"}})).param, "tool_choice.type");
  EXPECT_EQ(chat_error(with(chat_body(), "tool_choice", "required")).param, "tool_choice");
  EXPECT_EQ(chat_error(with(chat_body(), "tools", "a")).param, "tools");
  EXPECT_EQ(chat_error(with(chat_body(), "tools", json::array({1}))).param, "tools[0]");
  EXPECT_EQ(chat_error(with(chat_body(), "tools", json::array({{{"type", "retrieval"}}}))).param, "tools[0].type");
  EXPECT_EQ(chat_error(with(chat_body(), "tools", json::array({{{"function", {{"name", "a"}}}}}))).param, "tools[0].type");
  EXPECT_EQ(chat_error(with(chat_body(), "tools", json::array({{{"type", "function"}}}))).param, "tools[0].function");
  EXPECT_EQ(chat_error(with(chat_body(), "tools", json::array({{{"type", "function"}, {"function", json::object()}}}))).param,
            "tools[0].function.name");
  EXPECT_EQ(chat_error(with(chat_body(), "tools",
                            json::array({{{"type", "function"}, {"function", {{"name", "a"}, {"parameters", "x"}}}}})))
                .param,
            "tools[0].function.parameters");
}

TEST(OpenAIRequest, ThinkingSwitch) {
  EXPECT_TRUE(parse_chat_request(with(chat_body(), "chat_template_kwargs", {{"enable_thinking", true}})).text.enable_thinking);
  EXPECT_FALSE(parse_chat_request(with(chat_body(), "chat_template_kwargs", {{"enable_thinking", false}})).text.enable_thinking);
  EXPECT_FALSE(parse_chat_request(with(chat_body(), "chat_template_kwargs", {{"other", 1}})).text.enable_thinking);
  for (const char* effort : {"minimal", "low", "medium", "high"}) {
    EXPECT_TRUE(parse_chat_request(with(chat_body(), "reasoning_effort", effort)).text.enable_thinking) << effort;
  }
  EXPECT_FALSE(parse_chat_request(with(chat_body(), "reasoning_effort", "none")).text.enable_thinking);
  // The explicit template switch wins over reasoning_effort.
  json b = with(chat_body(), "reasoning_effort", "high");
  b["chat_template_kwargs"] = {{"enable_thinking", false}};
  EXPECT_FALSE(parse_chat_request(b).text.enable_thinking);

  EXPECT_EQ(chat_error(with(chat_body(), "chat_template_kwargs", {{"enable_thinking", "yes"}})).param,
            "chat_template_kwargs.enable_thinking");
  EXPECT_EQ(chat_error(with(chat_body(), "chat_template_kwargs", "x")).param, "chat_template_kwargs");
  EXPECT_EQ(chat_error(with(chat_body(), "reasoning_effort", 3)).param, "reasoning_effort");
}

TEST(OpenAIRequest, ChatLogprobs) {
  EXPECT_EQ(parse_chat_request(with(chat_body(), "logprobs", true)).text.top_logprobs, 0);
  EXPECT_EQ(parse_chat_request(with(chat_body(), "logprobs", false)).text.top_logprobs, -1);
  json b = with(chat_body(), "logprobs", true);
  EXPECT_EQ(parse_chat_request(with(b, "top_logprobs", 20)).text.top_logprobs, 20);
  EXPECT_EQ(parse_chat_request(with(b, "top_logprobs", 0)).text.top_logprobs, 0);
  EXPECT_EQ(chat_error(with(b, "top_logprobs", 21)).param, "top_logprobs");
  EXPECT_EQ(chat_error(with(b, "top_logprobs", -1)).param, "top_logprobs");
  EXPECT_EQ(chat_error(with(chat_body(), "top_logprobs", 2)).param, "top_logprobs");  // needs logprobs: true
  EXPECT_EQ(chat_error(with(chat_body(), "logprobs", 2)).param, "logprobs");         // chat: a boolean
}

TEST(OpenAIRequest, StreamOptions) {
  json b = with(chat_body(), "stream", true);
  EXPECT_FALSE(parse_chat_request(b).include_usage);
  EXPECT_TRUE(parse_chat_request(with(b, "stream_options", {{"include_usage", true}})).include_usage);
  // Without streaming there is no usage chunk to add: refused, as OpenAI and vLLM do.
  EXPECT_EQ(chat_error(with(chat_body(), "stream_options", {{"include_usage", true}})).param, "stream_options");
  EXPECT_EQ(chat_error(with(with(chat_body(), "stream", false), "stream_options", {{"include_usage", false}})).param,
            "stream_options");
  EXPECT_FALSE(parse_chat_request(with(chat_body(), "stream_options", nullptr)).include_usage);
  EXPECT_EQ(chat_error(with(chat_body(), "stream", "yes")).param, "stream");
  EXPECT_EQ(chat_error(with(b, "stream_options", true)).param, "stream_options");
  EXPECT_EQ(chat_error(with(b, "stream_options", {{"include_usage", 1}})).param, "stream_options.include_usage");
}

TEST(OpenAIRequest, ValuesBeyondSinglePrecisionAreRefusedByName) {
  const ApiError hot = chat_error(with(chat_body(), "temperature", 1e39));
  EXPECT_EQ(hot.param, "temperature");
  EXPECT_NE(hot.message.find("too large"), std::string::npos) << hot.message;
  const ApiError tiny = chat_error(with(chat_body(), "top_p", 1e-46));
  EXPECT_EQ(tiny.param, "top_p");
  EXPECT_NE(tiny.message.find("rounds to 0"), std::string::npos) << tiny.message;
  EXPECT_FLOAT_EQ(parse_chat_request(with(chat_body(), "top_p", 1e-30)).text.sampling.top_p, 1e-30f);
  const ApiError seed = chat_error(with(chat_body(), "seed", 18446744073709551616.0));
  EXPECT_EQ(seed.param, "seed");
  EXPECT_NE(seed.message.find("out of range"), std::string::npos) << seed.message;
}

// presence_penalty and frequency_penalty (OpenAI's, in [-2, 2]) and repetition_penalty (vLLM's, > 0).
TEST(OpenAIRequest, Penalties) {
  const OpenAIRequest none = parse_chat_request(chat_body());
  EXPECT_EQ(none.text.sampling.presence_penalty, 0.0f);
  EXPECT_EQ(none.text.sampling.frequency_penalty, 0.0f);
  EXPECT_EQ(none.text.sampling.repetition_penalty, 1.0f);
  EXPECT_FALSE(none.text.sampling_given.repetition_penalty);
  json b = completion_body();
  b["presence_penalty"] = 0.5;
  b["frequency_penalty"] = -2;
  b["repetition_penalty"] = 1.3;
  const OpenAIRequest r = parse_completion_request(b);
  EXPECT_EQ(r.text.sampling.presence_penalty, 0.5f);
  EXPECT_EQ(r.text.sampling.frequency_penalty, -2.0f);
  EXPECT_EQ(r.text.sampling.repetition_penalty, 1.3f);
  EXPECT_TRUE(r.text.sampling_given.repetition_penalty);
  EXPECT_TRUE(r.text.sampling.penalised());
  for (const char* key : {"presence_penalty", "frequency_penalty"}) {
    const ApiError e = chat_error(with(chat_body(), key, 2.5));
    EXPECT_EQ(e.param, key);
    EXPECT_NE(e.message.find("[-2, 2]"), std::string::npos) << e.message;
    EXPECT_EQ(chat_error(with(chat_body(), key, "high")).param, key);
  }
  EXPECT_EQ(chat_error(with(chat_body(), "repetition_penalty", 0)).param, "repetition_penalty");
  EXPECT_EQ(chat_error(with(chat_body(), "repetition_penalty", -1.5)).param, "repetition_penalty");
  EXPECT_EQ(chat_error(with(chat_body(), "repetition_penalty", 1e300)).param, "repetition_penalty");
  EXPECT_EQ(chat_error(with(chat_body(), "repetition_penalty", 1e-50)).param, "repetition_penalty");  // 0 as a float
}

// vLLM's min_tokens (at most max_tokens: the text service's check) and include_stop_str_in_output.
TEST(OpenAIRequest, MinTokensAndIncludeStop) {
  const OpenAIRequest plain = parse_completion_request(completion_body());
  EXPECT_EQ(plain.text.min_tokens, 0);
  EXPECT_FALSE(plain.text.include_stop_str_in_output);
  json b = completion_body();
  b["min_tokens"] = 3;
  b["include_stop_str_in_output"] = true;
  const OpenAIRequest r = parse_completion_request(b);
  EXPECT_EQ(r.text.min_tokens, 3);
  EXPECT_TRUE(r.text.include_stop_str_in_output);
  EXPECT_EQ(completion_error(with(completion_body(), "min_tokens", -1)).param, "min_tokens");
  EXPECT_EQ(completion_error(with(completion_body(), "min_tokens", 1.5)).param, "min_tokens");
  EXPECT_EQ(chat_error(with(chat_body(), "include_stop_str_in_output", "yes")).param, "include_stop_str_in_output");
}

// vLLM's chat template switches: add_generation_prompt and continue_final_message (which needs the
// former false: it continues the last message instead of opening a turn).
TEST(OpenAIRequest, ContinueFinalMessage) {
  const OpenAIRequest plain = parse_chat_request(chat_body());
  EXPECT_TRUE(plain.text.add_generation_prompt);
  EXPECT_FALSE(plain.text.continue_final_message);
  json b = chat_body();
  b["messages"].push_back({{"role", "assistant"}, {"content", "Hello,"}});
  b["add_generation_prompt"] = false;
  b["continue_final_message"] = true;
  const OpenAIRequest r = parse_chat_request(b);
  EXPECT_FALSE(r.text.add_generation_prompt);
  EXPECT_TRUE(r.text.continue_final_message);
  const ApiError both = chat_error(with(b, "add_generation_prompt", true));
  EXPECT_EQ(both.param, "continue_final_message");
  EXPECT_NE(both.message.find("add_generation_prompt"), std::string::npos) << both.message;
  EXPECT_EQ(chat_error(with(chat_body(), "add_generation_prompt", 1)).param, "add_generation_prompt");
  // The last message must be the assistant's; a forced call cannot begin the continued turn.
  json user_last = with(with(chat_body(), "add_generation_prompt", false), "continue_final_message", true);
  EXPECT_EQ(chat_error(user_last).param, "continue_final_message");
  json forced = b;
  forced["tools"] = json::parse(R"([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}])");
  forced["tool_choice"] = "required";
  EXPECT_EQ(chat_error(forced).param, "continue_final_message");
  // vLLM's chat echo: the continued message begins the output (openai_response).
  EXPECT_TRUE(parse_chat_request(with(b, "echo", true)).echo);
  EXPECT_FALSE(parse_chat_request(with(b, "echo", false)).echo);
  EXPECT_EQ(chat_error(with(b, "echo", "yes")).param, "echo");
}

// logit_bias: token ids (as strings) to a bias in [-100, 100]; whether an id is in the vocabulary is
// the text service's check.
TEST(OpenAIRequest, LogitBias) {
  const OpenAIRequest r = parse_chat_request(with(chat_body(), "logit_bias", {{"50256", -100}, {"7", 2.5}}));
  EXPECT_EQ(r.text.logit_bias, (std::map<int32_t, float>{{7, 2.5f}, {50256, -100.0f}}));
  EXPECT_TRUE(parse_chat_request(with(chat_body(), "logit_bias", json::object())).text.logit_bias.empty());
  // Keys as Python's int() reads them (vLLM's); two keys for one token are refused.
  EXPECT_EQ(parse_chat_request(with(chat_body(), "logit_bias", {{" +5 ", 1}, {"007", 2}, {"-0", 3}})).text.logit_bias,
            (std::map<int32_t, float>{{0, 3.0f}, {5, 1.0f}, {7, 2.0f}}));
  const ApiError twice = chat_error(with(chat_body(), "logit_bias", {{"05", 100}, {"5", -100}}));
  EXPECT_EQ(twice.param, "logit_bias");
  EXPECT_NE(twice.message.find("names token 5 twice"), std::string::npos) << twice.message;
  for (const json& bad : {json{{"x1", 1}}, json{{"-3", 1}}, json{{"12", 100.5}}, json{{"12", "high"}}, json{{"", 1}},
                          json{{"99999999999", 1}}, json{{"+", 1}}, json{{"1 2", 1}}, json{{"0x10", 1}}, json(json::array({1, 2}))}) {
    const ApiError e = chat_error(with(chat_body(), "logit_bias", bad));
    EXPECT_EQ(e.param.rfind("logit_bias", 0), 0u) << bad.dump() << ": " << e.param;  // or the entry, logit_bias[12]
    EXPECT_EQ(e.status, 400) << bad.dump();
  }
}

TEST(OpenAIRequest, UnsupportedFeaturesAreRefusedByName) {
  EXPECT_EQ(chat_error(with(chat_body(), "response_format", "text")).param, "response_format");
  EXPECT_EQ(chat_error(with(chat_body(), "ignore_eos", "no")).param, "ignore_eos");
  // vLLM extensions that are not implemented are refused, not ignored; their neutral values pass.
  EXPECT_EQ(completion_error(with(completion_body(), "guided_regex", "a+")).param, "guided_regex");
  json neutral = chat_body();
  neutral["guided_json"] = nullptr;
  EXPECT_NO_THROW(parse_chat_request(neutral));
}

// Guided decoding: response_format json_object, guided_choice, structured_outputs {choice |
// json_object}; one form at a time; malformed choices refused.
TEST(OpenAIRequest, GuidedDecoding) {
  using Kind = TextRequest::Guided::Kind;
  EXPECT_EQ(parse_chat_request(chat_body()).text.guided.kind, Kind::kNone);
  EXPECT_EQ(parse_chat_request(with(chat_body(), "response_format", {{"type", "text"}})).text.guided.kind, Kind::kNone);
  EXPECT_EQ(parse_chat_request(with(chat_body(), "response_format", {{"type", "json_object"}})).text.guided.kind, Kind::kJsonObject);
  const OpenAIRequest c = parse_completion_request(with(completion_body(), "guided_choice", {"yes", "no"}));
  EXPECT_EQ(c.text.guided.kind, Kind::kChoice);
  EXPECT_EQ(c.text.guided.choices, (std::vector<std::string>{"yes", "no"}));
  const OpenAIRequest so = parse_chat_request(with(chat_body(), "structured_outputs", {{"choice", {"a"}}}));
  EXPECT_EQ(so.text.guided.choices, std::vector<std::string>{"a"});
  EXPECT_EQ(parse_chat_request(with(chat_body(), "structured_outputs", {{"json_object", true}})).text.guided.kind, Kind::kJsonObject);
  EXPECT_EQ(chat_error(with(with(chat_body(), "guided_choice", {"a"}), "response_format", {{"type", "json_object"}})).param,
            "response_format");
  EXPECT_EQ(chat_error(with(chat_body(), "guided_choice", json::array())).param, "guided_choice");
  EXPECT_EQ(chat_error(with(chat_body(), "guided_choice", {"a", ""})).param, "guided_choice");
  EXPECT_EQ(chat_error(with(chat_body(), "guided_choice", "a")).param, "guided_choice");
  EXPECT_EQ(chat_error(with(chat_body(), "structured_outputs", {{"regex", "a+"}})).param, "structured_outputs");
  const json schema = {{"type", "object"}, {"properties", {{"a", {{"type", "integer"}}}}}};
  const OpenAIRequest rf = parse_chat_request(
      with(chat_body(), "response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "x"}, {"schema", schema}, {"strict", true}}}}));
  EXPECT_EQ(rf.text.guided.kind, Kind::kJsonSchema);
  EXPECT_EQ(rf.text.guided.schema, schema);
  EXPECT_EQ(parse_completion_request(with(completion_body(), "guided_json", schema.dump())).text.guided.schema, schema);
  EXPECT_EQ(parse_completion_request(with(completion_body(), "guided_json", schema)).text.guided.kind, Kind::kJsonSchema);
  EXPECT_EQ(parse_chat_request(with(chat_body(), "structured_outputs", {{"json", schema}})).text.guided.schema, schema);
  EXPECT_EQ(parse_completion_request(with(completion_body(), "response_format", {{"type", "json_object"}})).text.guided.kind,
            Kind::kJsonObject);
  EXPECT_EQ(chat_error(with(chat_body(), "response_format", {{"type", "json_schema"}})).param, "response_format");
  EXPECT_EQ(chat_error(with(chat_body(), "guided_json", "{not json")).param, "guided_json");
  EXPECT_EQ(chat_error(with(chat_body(), "guided_json", 5)).param, "guided_json");
  EXPECT_EQ(chat_error(with(chat_body(), "structured_outputs", {{"wrong", 1}})).param, "structured_outputs");
}

// vLLM's prompt_logprobs (both endpoints) and completions' echo, which lists the prompt's tokens
// with the output's log-probabilities when those are asked for.
TEST(OpenAIRequest, PromptLogprobsAndEcho) {
  OpenAIRequest plain = parse_completion_request(completion_body());
  EXPECT_EQ(plain.text.prompt_logprobs, -1);
  EXPECT_FALSE(plain.prompt_logprobs);
  EXPECT_FALSE(plain.echo);
  OpenAIRequest p = parse_chat_request(with(chat_body(), "prompt_logprobs", 3));
  EXPECT_EQ(p.text.prompt_logprobs, 3);
  EXPECT_TRUE(p.prompt_logprobs);
  EXPECT_EQ(parse_chat_request(with(chat_body(), "prompt_logprobs", nullptr)).text.prompt_logprobs, -1);
  EXPECT_EQ(completion_error(with(completion_body(), "prompt_logprobs", -1)).param, "prompt_logprobs");
  EXPECT_EQ(completion_error(with(completion_body(), "prompt_logprobs", 21)).param, "prompt_logprobs");
  OpenAIRequest echo = parse_completion_request(with(completion_body(), "echo", true));
  EXPECT_TRUE(echo.echo);
  EXPECT_EQ(echo.text.prompt_logprobs, -1);  // no log-probabilities asked for: none computed
  OpenAIRequest echo_lp = parse_completion_request(with(with(completion_body(), "echo", true), "logprobs", 2));
  EXPECT_EQ(echo_lp.text.prompt_logprobs, 2);
  EXPECT_FALSE(echo_lp.prompt_logprobs);  // the field is not added to the response
  EXPECT_EQ(completion_error(with(completion_body(), "echo", "yes")).param, "echo");
}

TEST(OpenAIRequest, StopTokenIds) {
  EXPECT_EQ(parse_completion_request(with(completion_body(), "stop_token_ids", {192, 7})).text.stop_token_ids,
            (std::vector<int32_t>{192, 7}));
  EXPECT_EQ(completion_error(with(completion_body(), "stop_token_ids", 192)).param, "stop_token_ids");
  EXPECT_EQ(completion_error(with(completion_body(), "stop_token_ids", {1, -2})).param, "stop_token_ids[1]");
  EXPECT_EQ(chat_error(with(chat_body(), "stop_token_ids", {"a"})).param, "stop_token_ids[0]");
}

TEST(OpenAIRequest, Completions) {
  OpenAIRequest r = parse_completion_request(completion_body());
  EXPECT_EQ(r.endpoint, Endpoint::kCompletions);
  EXPECT_FALSE(r.text.chat);
  EXPECT_EQ(r.text.prompt, "Once upon");
  EXPECT_EQ(r.text.top_logprobs, -1);
  EXPECT_EQ(parse_completion_request(with(completion_body(), "prompt", json::array({"one"}))).text.prompt, "one");
  EXPECT_EQ(parse_completion_request(with(completion_body(), "prompt", "")).text.prompt, "");
  EXPECT_EQ(parse_completion_request(with(completion_body(), "logprobs", 0)).text.top_logprobs, 0);
  EXPECT_EQ(parse_completion_request(with(completion_body(), "logprobs", 5)).text.top_logprobs, 5);
  EXPECT_NO_THROW(parse_completion_request(with(completion_body(), "echo", false)));
  EXPECT_NO_THROW(parse_completion_request(with(completion_body(), "suffix", "")));
  EXPECT_NO_THROW(parse_completion_request(with(completion_body(), "best_of", 1)));
  json full = completion_body();
  full["max_tokens"] = 3;
  full["temperature"] = 0;
  full["stop"] = "\n";
  full["stream"] = true;
  full["seed"] = 9;
  OpenAIRequest f = parse_completion_request(full);
  EXPECT_EQ(f.text.max_tokens, 3);
  EXPECT_EQ(f.text.stop, std::vector<std::string>{"\n"});
  EXPECT_TRUE(f.stream);
  EXPECT_EQ(f.text.sampling.seed, 9u);

  json none = completion_body();
  none.erase("prompt");
  EXPECT_EQ(completion_error(none).param, "prompt");
  EXPECT_EQ(completion_error(with(completion_body(), "prompt", json::array({"a", "b"}))).param, "prompt");
  EXPECT_EQ(completion_error(with(completion_body(), "prompt", json::array({1, 2, 3}))).param, "prompt");
  EXPECT_EQ(completion_error(with(completion_body(), "prompt", json::array())).param, "prompt");
  EXPECT_EQ(completion_error(with(completion_body(), "prompt", 5)).param, "prompt");
  EXPECT_EQ(completion_error(with(completion_body(), "logprobs", 6)).param, "logprobs");
  EXPECT_EQ(completion_error(with(completion_body(), "logprobs", true)).param, "logprobs");
  EXPECT_EQ(completion_error(with(completion_body(), "suffix", "end")).param, "suffix");
}

}  // namespace
}  // namespace shardlm::http
