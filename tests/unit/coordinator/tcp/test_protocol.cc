// The pieces of the TCP client protocol that need no network: server addresses, UTF-8 repair, and the
// conversions between protocol messages and the text service's requests and results.
#include <gtest/gtest.h>

#include <limits>
#include <memory>

#include "common/error.h"
#include "coordinator/request_error.h"
#include "coordinator/tcp/client.h"
#include "coordinator/tcp/protocol.h"
#include "coordinator/tcp/text_conversion.h"

namespace shardlm::tcp {
namespace {

TEST(HostPort, Parses) {
  EXPECT_EQ(parse_host_port("127.0.0.1:7070"), std::make_pair(std::string("127.0.0.1"), 7070));
  EXPECT_EQ(parse_host_port("node-3.cluster:1"), std::make_pair(std::string("node-3.cluster"), 1));
  EXPECT_EQ(parse_host_port("[::1]:65535"), std::make_pair(std::string("::1"), 65535));
  for (const char* bad : {"", "host", "host:", ":7070", "host:0", "host:65536", "host:70x", "::1:7070", "[::1]7070",
                          "[::1]:", "host:123456"}) {
    EXPECT_THROW(parse_host_port(bad), Error) << bad;
  }
}

TEST(Utf8, RepairsInvalidBytes) {
  EXPECT_EQ(valid_utf8("plain ascii"), "plain ascii");
  EXPECT_EQ(valid_utf8("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"), "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80");
  const std::string bad = "\xef\xbf\xbd";
  EXPECT_EQ(valid_utf8("a\xff" "b"), "a" + bad + "b");
  EXPECT_EQ(valid_utf8("\xc3"), bad);                       // truncated
  EXPECT_EQ(valid_utf8("\xc0\xaf"), bad + bad);             // overlong
  EXPECT_EQ(valid_utf8("\xed\xa0\x80"), bad + bad + bad);   // surrogate
  EXPECT_EQ(valid_utf8("\xf4\x90\x80\x80"), bad + bad + bad + bad);  // above U+10FFFF
  EXPECT_EQ(valid_utf8("\xe2\x82"), bad + bad);
  EXPECT_EQ(valid_utf8(std::string("a\0b", 3)), std::string("a\0b", 3));
}

TEST(Names, CoverEveryCode) {
  for (int c = client::ErrorCode_MIN; c <= client::ErrorCode_MAX; ++c) {
    if (c == client::ERROR_CODE_UNSPECIFIED) continue;
    EXPECT_STRNE(error_code_name(static_cast<client::ErrorCode>(c)), "unknown") << c;
  }
  for (int r = client::FinishReason_MIN; r <= client::FinishReason_MAX; ++r) {
    if (r == client::FINISH_REASON_UNSPECIFIED) continue;
    EXPECT_STRNE(finish_reason_name(static_cast<client::FinishReason>(r)), "unknown") << r;
  }
  EXPECT_EQ(to_proto_error_code(RequestErrorCode::kQueueFull), client::ERROR_QUEUE_FULL);
  EXPECT_EQ(to_proto_error_code(RequestErrorCode::kContextLength), client::ERROR_CONTEXT_LENGTH);
  EXPECT_EQ(to_proto_error_code(RequestErrorCode::kNotFound), client::ERROR_NOT_FOUND);
  EXPECT_EQ(to_proto_error_code(RequestErrorCode::kUnavailable), client::ERROR_UNAVAILABLE);
  EXPECT_EQ(to_proto_error_code(RequestErrorCode::kInternal), client::ERROR_INTERNAL);
  EXPECT_EQ(to_proto_error_code(RequestErrorCode::kInvalidRequest), client::ERROR_INVALID_REQUEST);
}

TEST(Conversion, PromptRequestDefaults) {
  client::GenerateRequest g;
  g.set_prompt("hi");
  const TextRequest r = to_text_request(g);
  EXPECT_FALSE(r.chat);
  EXPECT_EQ(r.prompt, "hi");
  EXPECT_EQ(r.max_tokens, -1);
  EXPECT_EQ(r.sampling.temperature, 1.0f);
  EXPECT_EQ(r.sampling.top_p, 1.0f);
  EXPECT_EQ(r.sampling.top_k, 0);
  EXPECT_FALSE(r.sampling_given.temperature || r.sampling_given.top_k || r.sampling_given.top_p || r.sampling_given.min_p);
  EXPECT_EQ(r.top_logprobs, -1);
  EXPECT_FALSE(r.ignore_eos);
}

TEST(Conversion, PromptRequestFields) {
  RequestOptions o;
  o.max_tokens = 9;
  o.temperature = 0.5f;
  o.top_k = 7;
  o.top_p = 0.9f;
  o.min_p = 0.05f;
  o.seed = 42;
  o.presence_penalty = 0.5f;
  o.frequency_penalty = -0.25f;
  o.repetition_penalty = 1.2f;
  o.logit_bias = {{5, -100.0f}, {9, 1.5f}};
  o.min_tokens = 4;
  o.include_stop_str_in_output = true;
  o.stop = {"\n\n", "END"};
  o.top_logprobs = 0;
  o.ignore_eos = true;
  client::GenerateRequest g = Client::make_request(o);
  g.set_prompt("x");
  const TextRequest r = to_text_request(g);
  EXPECT_EQ(r.max_tokens, 9);
  EXPECT_EQ(r.sampling.temperature, 0.5f);
  EXPECT_EQ(r.sampling.top_k, 7);
  EXPECT_EQ(r.sampling.top_p, 0.9f);
  EXPECT_EQ(r.sampling.min_p, 0.05f);
  EXPECT_EQ(r.sampling.seed, 42u);
  EXPECT_EQ(r.sampling.presence_penalty, 0.5f);
  EXPECT_EQ(r.sampling.frequency_penalty, -0.25f);
  EXPECT_EQ(r.sampling.repetition_penalty, 1.2f);
  EXPECT_EQ(r.logit_bias, o.logit_bias);
  EXPECT_EQ(r.min_tokens, 4);
  EXPECT_TRUE(r.include_stop_str_in_output);
  EXPECT_TRUE(r.sampling_given.temperature && r.sampling_given.top_k && r.sampling_given.top_p && r.sampling_given.min_p &&
              r.sampling_given.repetition_penalty);
  client::GenerateRequest only_p;
  only_p.set_prompt("x");
  only_p.mutable_sampling()->set_top_p(0.5f);
  const TextRequest p = to_text_request(only_p);
  EXPECT_TRUE(p.sampling_given.top_p);
  EXPECT_FALSE(p.sampling_given.temperature || p.sampling_given.top_k || p.sampling_given.min_p || p.sampling_given.repetition_penalty);
  EXPECT_FALSE(p.sampling.penalised());
  client::GenerateRequest bad = only_p;
  bad.mutable_sampling()->set_presence_penalty(3.0f);
  try {
    to_text_request(bad);
    ADD_FAILURE() << "presence_penalty 3 was accepted";
  } catch (const RequestError& e) {
    EXPECT_NE(std::string(e.what()).find("presence_penalty"), std::string::npos) << e.what();
  }
  EXPECT_EQ(r.stop, (std::vector<std::string>{"\n\n", "END"}));
  EXPECT_EQ(r.top_logprobs, 0);
  EXPECT_TRUE(r.ignore_eos);
}

TEST(Conversion, ChatMessagesBecomeOpenAiJson) {
  client::GenerateRequest g;
  client::ChatInput* chat = g.mutable_chat();
  chat->set_enable_thinking(true);
  chat->set_tools_json(R"([{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}])");
  chat->set_tool_choice("required");
  chat->set_tool_choice_function("get_weather");
  chat->set_continue_final_message(true);
  auto* sys = chat->add_messages();
  sys->set_role("system");
  sys->set_content("Be brief.");
  auto* user = chat->add_messages();
  user->set_role("user");
  user->set_content("Weather in Paris?");
  auto* assistant = chat->add_messages();
  assistant->set_role("assistant");
  assistant->set_reasoning("need the tool");
  auto* call = assistant->add_tool_calls();
  call->set_id("call_0");
  call->set_name("get_weather");
  call->set_arguments_json(R"({"city":"Paris"})");
  auto* tool = chat->add_messages();
  tool->set_role("tool");
  tool->set_tool_call_id("call_0");
  tool->set_content("sunny");
  const TextRequest r = to_text_request(g);
  ASSERT_TRUE(r.chat);
  EXPECT_TRUE(r.enable_thinking);
  ASSERT_TRUE(r.tools.is_array());
  EXPECT_EQ(r.tools[0]["function"]["name"], "get_weather");
  EXPECT_EQ(r.tool_choice, "required");
  EXPECT_EQ(r.tool_choice_function, "get_weather");
  EXPECT_TRUE(r.continue_final_message);
  EXPECT_FALSE(r.add_generation_prompt);  // continuing opens no turn
  ASSERT_EQ(r.messages.size(), 4u);
  EXPECT_EQ(r.messages[0], nlohmann::json({{"role", "system"}, {"content", "Be brief."}}));
  EXPECT_EQ(r.messages[1], nlohmann::json({{"role", "user"}, {"content", "Weather in Paris?"}}));
  const nlohmann::json& a = r.messages[2];
  EXPECT_FALSE(a.contains("content"));  // absent content stays absent
  EXPECT_EQ(a["reasoning_content"], "need the tool");
  EXPECT_EQ(a["tool_calls"][0]["id"], "call_0");
  EXPECT_EQ(a["tool_calls"][0]["type"], "function");
  EXPECT_EQ(a["tool_calls"][0]["function"]["name"], "get_weather");
  EXPECT_EQ(a["tool_calls"][0]["function"]["arguments"], R"({"city":"Paris"})");
  EXPECT_EQ(r.messages[3], nlohmann::json({{"role", "tool"}, {"content", "sunny"}, {"tool_call_id", "call_0"}}));
}

void expect_invalid(const client::GenerateRequest& g, const std::string& words) {
  try {
    to_text_request(g);
    ADD_FAILURE() << "accepted " << g.ShortDebugString();
  } catch (const RequestError& e) {
    EXPECT_EQ(e.code(), RequestErrorCode::kInvalidRequest);
    EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
  }
}

TEST(Conversion, RefusesMalformedFields) {
  client::GenerateRequest g;
  expect_invalid(g, "neither a prompt nor chat");
  g.set_prompt("x");
  g.set_max_tokens(0);
  expect_invalid(g, "max_tokens must be >= 1");
  g.clear_max_tokens();
  g.mutable_sampling()->set_temperature(-0.5f);
  expect_invalid(g, "temperature");
  g.mutable_sampling()->clear_temperature();
  g.mutable_sampling()->set_top_k(-1);
  expect_invalid(g, "top_k");
  g.mutable_sampling()->clear_top_k();
  g.mutable_sampling()->set_min_p(2);
  expect_invalid(g, "min_p");
  g.mutable_sampling()->clear_min_p();
  g.set_top_logprobs(-1);
  expect_invalid(g, "top_logprobs");
  g.set_top_logprobs(21);
  expect_invalid(g, "top_logprobs");
  g.clear_top_logprobs();
  for (int i = 0; i < 17; ++i) g.add_stop("s" + std::to_string(i));
  expect_invalid(g, "at most 16 stop strings");
  g.clear_stop();
  g.add_stop("");
  expect_invalid(g, "stop[0] is empty");
  g.clear_stop();
  EXPECT_NO_THROW(to_text_request(g));

  client::GenerateRequest c;
  c.mutable_chat();
  expect_invalid(c, "chat.messages is empty");
  c.mutable_chat()->add_messages()->set_content("no role");
  expect_invalid(c, "chat.messages[0].role is empty");
  c.mutable_chat()->mutable_messages(0)->set_role("user");
  c.mutable_chat()->set_tools_json("[1,");
  expect_invalid(c, "chat.tools_json is not valid JSON");
  c.mutable_chat()->set_tools_json("{}");
  expect_invalid(c, "chat.tools_json must be a JSON array");
  c.mutable_chat()->clear_tools_json();
  c.mutable_chat()->mutable_messages(0)->add_tool_calls();
  expect_invalid(c, "tool_calls[0].name is empty");
}

// Protocol 1.5's guided decoding fields: one form at a time; a schema must be JSON.
TEST(Conversion, GuidedDecoding) {
  client::GenerateRequest g;
  g.set_prompt("x");
  EXPECT_EQ(to_text_request(g).guided.kind, TextRequest::Guided::Kind::kNone);
  g.set_guided_json_object(true);
  EXPECT_EQ(to_text_request(g).guided.kind, TextRequest::Guided::Kind::kJsonObject);
  g.add_guided_choice("yes");
  expect_invalid(g, "give one of");
  g.set_guided_json_object(false);
  g.add_guided_choice("no");
  const TextRequest c = to_text_request(g);
  EXPECT_EQ(c.guided.kind, TextRequest::Guided::Kind::kChoice);
  EXPECT_EQ(c.guided.choices, (std::vector<std::string>{"yes", "no"}));
  g.clear_guided_choice();
  g.set_guided_json_schema(R"({"type": "object", "properties": {"a": {"type": "integer"}}})");
  const TextRequest s = to_text_request(g);
  EXPECT_EQ(s.guided.kind, TextRequest::Guided::Kind::kJsonSchema);
  EXPECT_EQ(s.guided.schema["properties"]["a"]["type"], "integer");
  g.set_guided_json_schema("{nope");
  expect_invalid(g, "guided_json_schema is not valid JSON");
  // The client library sets them.
  tcp::RequestOptions o;
  o.guided_choice = {"a", "b"};
  EXPECT_EQ(tcp::Client::make_request(o).guided_choice_size(), 2);
}

TEST(Conversion, DeltaAndFinish) {
  TextDelta d;
  d.content = "ok \xff";
  d.reasoning = "think";
  d.tool_calls.push_back({"f", {{"a", 1}}});
  d.tool_calls.push_back({"g", {{"s", "bad \xff"}}});
  TextTokenLogprob lp;
  lp.token = "\xe2\x82";  // part of a character: kept as bytes
  lp.logprob = -0.25f;
  lp.top = {{"\xe2\x82", -0.25f}, {"x", -2.0f}};
  d.logprobs.push_back(lp);
  int next = 3;
  client::Delta out;
  to_proto_delta(d, next, out);
  EXPECT_EQ(out.content(), "ok \xef\xbf\xbd");
  EXPECT_EQ(out.reasoning(), "think");
  ASSERT_EQ(out.tool_calls_size(), 2);
  EXPECT_EQ(out.tool_calls(0).id(), "call_3");
  EXPECT_EQ(out.tool_calls(1).id(), "call_4");
  EXPECT_EQ(next, 5);
  EXPECT_EQ(nlohmann::json::parse(out.tool_calls(0).arguments_json()), nlohmann::json({{"a", 1}}));
  EXPECT_EQ(nlohmann::json::parse(out.tool_calls(1).arguments_json())["s"], "bad \xef\xbf\xbd");
  ASSERT_EQ(out.logprobs_size(), 1);
  EXPECT_EQ(out.logprobs(0).token(), "\xe2\x82");
  EXPECT_EQ(out.logprobs(0).logprob(), -0.25f);
  ASSERT_EQ(out.logprobs(0).top_size(), 2);
  EXPECT_EQ(out.logprobs(0).top(1).token(), "x");
  // It serialises and parses back (strings are valid UTF-8).
  client::Delta back;
  ASSERT_TRUE(back.ParseFromString(out.SerializeAsString()));

  TextFinish f;
  f.finish_reason = "tool_calls";
  f.prompt_tokens = 11;
  f.completion_tokens = 4;
  f.timings.queue_s = 0.5;
  f.timings.prefill_s = 1.5;
  f.timings.ttft_s = 2.0;
  f.timings.decode_s = 3.0;
  f.timings.total_s = 5.0;
  client::Finish pf;
  to_proto_finish(f, pf);
  EXPECT_EQ(pf.finish_reason(), client::FINISH_REASON_TOOL_CALLS);
  EXPECT_EQ(pf.usage().prompt_tokens(), 11);
  EXPECT_EQ(pf.usage().completion_tokens(), 4);
  EXPECT_EQ(pf.timings().queue_seconds(), 0.5);
  EXPECT_EQ(pf.timings().prefill_seconds(), 1.5);
  EXPECT_EQ(pf.timings().ttft_seconds(), 2.0);
  EXPECT_EQ(pf.timings().decode_seconds(), 3.0);
  EXPECT_EQ(pf.timings().total_seconds(), 5.0);
  for (const auto& [name, reason] : std::vector<std::pair<std::string, client::FinishReason>>{
           {"stop", client::FINISH_REASON_STOP},
           {"length", client::FINISH_REASON_LENGTH},
           {"cancelled", client::FINISH_REASON_CANCELLED}}) {
    f.finish_reason = name;
    to_proto_finish(f, pf);
    EXPECT_EQ(pf.finish_reason(), reason) << name;
  }
}

TEST(Conversion, ChoicesPromptLogprobsAndEcho) {
  client::GenerateRequest g;
  g.set_prompt("p");
  EXPECT_EQ(to_text_request(g).n, 1);
  EXPECT_EQ(to_text_request(g).prompt_logprobs, -1);
  g.set_n(3);
  g.set_prompt_logprobs(5);
  g.set_echo(true);
  const TextRequest r = to_text_request(g);
  EXPECT_EQ(r.n, 3);
  EXPECT_EQ(r.prompt_logprobs, 5);
  g.set_n(0);
  expect_invalid(g, "n must be in [1, 128] (got 0)");
  g.set_n(129);
  expect_invalid(g, "n must be in [1, 128] (got 129)");
  g.set_n(128);
  g.set_prompt_logprobs(21);
  expect_invalid(g, "prompt_logprobs must be in [0, 20] (got 21)");
  g.set_prompt_logprobs(-1);
  expect_invalid(g, "prompt_logprobs must be in [0, 20] (got -1)");
  g.set_prompt_logprobs(0);
  EXPECT_EQ(to_text_request(g).prompt_logprobs, 0);
  g.mutable_chat()->add_messages()->set_role("user");
  expect_invalid(g, "echo is for completion prompts");
  g.set_echo(false);
  EXPECT_EQ(to_text_request(g).n, 128);
  // The client library sets them.
  tcp::RequestOptions o;
  o.n = 4;
  o.prompt_logprobs = 2;
  o.echo = true;
  const client::GenerateRequest m = tcp::Client::make_request(o);
  EXPECT_EQ(m.n(), 4);
  EXPECT_EQ(m.prompt_logprobs(), 2);
  EXPECT_TRUE(m.echo());
  EXPECT_FALSE(tcp::Client::make_request(tcp::RequestOptions{}).has_n());

  // A choice's delta names it; the prompt's log-probabilities, the first without one.
  TextDelta d;
  d.index = 2;
  auto prompt = std::make_shared<std::vector<PromptTokenLogprob>>();
  PromptTokenLogprob first;
  first.id = 2;
  first.token = "<bos>";
  first.logprob = std::numeric_limits<float>::quiet_NaN();
  prompt->push_back(first);
  PromptTokenLogprob second;
  second.id = 7;
  second.token = "\xe2";
  second.logprob = -1.5f;
  second.rank = 3;
  second.top = {{9, "a", -0.5f}, {11, "b", -1.0f}};
  prompt->push_back(second);
  d.prompt_logprobs = prompt;
  int next = 0;
  client::Delta out;
  to_proto_delta(d, next, out);
  EXPECT_EQ(out.index(), 2);
  ASSERT_EQ(out.prompt_logprobs_size(), 2);
  EXPECT_EQ(out.prompt_logprobs(0).id(), 2);
  EXPECT_FALSE(out.prompt_logprobs(0).has_logprob());
  EXPECT_EQ(out.prompt_logprobs(0).rank(), 0);
  EXPECT_EQ(out.prompt_logprobs(1).token(), "\xe2");
  EXPECT_EQ(out.prompt_logprobs(1).logprob(), -1.5f);
  EXPECT_EQ(out.prompt_logprobs(1).rank(), 3);
  ASSERT_EQ(out.prompt_logprobs(1).top_size(), 2);
  EXPECT_EQ(out.prompt_logprobs(1).top(1).id(), 11);
  EXPECT_EQ(out.prompt_logprobs(1).top(1).token(), "b");
  EXPECT_EQ(out.prompt_logprobs(1).top(1).logprob(), -1.0f);
  client::Delta back;
  ASSERT_TRUE(back.ParseFromString(out.SerializeAsString()));

  // Each choice's finish reason, by index; converting again replaces them.
  TextFinish f;
  f.finish_reason = "length";
  f.choice_reasons = {"length", "stop", "tool_calls"};
  client::Finish pf;
  to_proto_finish(f, pf);
  to_proto_finish(f, pf);
  ASSERT_EQ(pf.choice_finish_reasons_size(), 3);
  EXPECT_EQ(pf.choice_finish_reasons(0), client::FINISH_REASON_LENGTH);
  EXPECT_EQ(pf.choice_finish_reasons(1), client::FINISH_REASON_STOP);
  EXPECT_EQ(pf.choice_finish_reasons(2), client::FINISH_REASON_TOOL_CALLS);
  EXPECT_EQ(to_proto_finish_reason("cancelled"), client::FINISH_REASON_CANCELLED);
}

}  // namespace
}  // namespace shardlm::tcp
