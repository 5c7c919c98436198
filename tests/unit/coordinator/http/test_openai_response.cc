#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

#include "coordinator/http/openai_request.h"
#include "coordinator/http/openai_response.h"

namespace shardlm::http {
namespace {

using nlohmann::json;

ResponseMeta chat_meta(bool logprobs = false, bool include_usage = false) {
  ResponseMeta m;
  m.endpoint = Endpoint::kChat;
  m.id = "chatcmpl-test";
  m.created = 1700000000;
  m.model = "tiny";
  m.logprobs = logprobs;
  m.include_usage = include_usage;
  return m;
}

ResponseMeta completion_meta(bool logprobs = false, bool include_usage = false) {
  ResponseMeta m = chat_meta(logprobs, include_usage);
  m.endpoint = Endpoint::kCompletions;
  m.id = "cmpl-test";
  return m;
}

TextFinish finish(const std::string& reason, int64_t prompt = 5, int64_t completion = 3) {
  TextFinish f;
  f.finish_reason = reason;
  f.prompt_tokens = prompt;
  f.completion_tokens = completion;
  return f;
}

TextDelta content(const std::string& text) {
  TextDelta d;
  d.content = text;
  return d;
}

// Splits an SSE stream into its data payloads; checks the framing.
std::vector<std::string> events(const std::string& stream) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < stream.size()) {
    EXPECT_EQ(stream.compare(pos, 6, "data: "), 0) << stream.substr(pos);
    size_t end = stream.find("\n\n", pos);
    EXPECT_NE(end, std::string::npos);
    if (end == std::string::npos) break;
    out.push_back(stream.substr(pos + 6, end - pos - 6));
    pos = end + 2;
  }
  return out;
}

TEST(OpenAIResponse, IdsAreUniqueWithPrefix) {
  std::string a = new_id("chatcmpl-"), b = new_id("chatcmpl-");
  EXPECT_EQ(a.rfind("chatcmpl-", 0), 0u);
  EXPECT_EQ(a.size(), 9u + 24u);
  EXPECT_NE(a, b);
  EXPECT_EQ(new_id("call_").rfind("call_", 0), 0u);
  EXPECT_GT(unix_time(), 1600000000);
}

TEST(OpenAIResponse, MetaFromRequest) {
  OpenAIRequest r;
  r.endpoint = Endpoint::kCompletions;
  r.model = "m";
  r.stream = true;
  r.include_usage = true;
  r.text.top_logprobs = 0;
  ResponseMeta m = make_meta(r);
  EXPECT_EQ(m.id.rfind("cmpl-", 0), 0u);
  EXPECT_EQ(m.model, "m");
  EXPECT_TRUE(m.logprobs);
  EXPECT_TRUE(m.include_usage);
  r.endpoint = Endpoint::kChat;
  r.text.top_logprobs = -1;
  EXPECT_EQ(make_meta(r).id.rfind("chatcmpl-", 0), 0u);
  EXPECT_FALSE(make_meta(r).logprobs);
}

// vLLM's chat echo: the last message, when it is the assistant's (a string or text parts), begins
// each choice's content; another role's last message gives no echo.
TEST(OpenAIResponse, ChatEchoOfTheAssistantsLastMessage) {
  OpenAIRequest r;
  r.endpoint = Endpoint::kChat;
  r.echo = true;
  r.text.n = 2;
  r.text.top_logprobs = 0;
  r.text.messages = json::array({{{"role", "user"}, {"content", "Hi"}}, {{"role", "assistant"}, {"content", "Well,"}}});
  ResponseMeta m = make_meta(r);
  EXPECT_TRUE(m.echo);
  EXPECT_EQ(m.echo_text, "Well,");
  EXPECT_FALSE(m.echo_logprobs);  // chat: the echo has no log-probabilities
  r.text.messages.back()["content"] = json::array({{{"type", "text"}, {"text", "Well"}}, {{"type", "text"}, {"text", ", so"}}});
  EXPECT_EQ(make_meta(r).echo_text, "Well, so");
  r.text.messages.back()["role"] = "user";
  EXPECT_FALSE(make_meta(r).echo);
  r.echo = false;
  r.text.messages.back()["role"] = "assistant";
  EXPECT_FALSE(make_meta(r).echo);

  CompletionBuilder b(m);
  TextDelta d = content(" yes");
  d.index = 1;
  b.add(d);
  json whole = b.finish(finish("stop"));
  EXPECT_EQ(whole["choices"][0]["message"]["content"], "Well,");
  EXPECT_EQ(whole["choices"][1]["message"]["content"], "Well, yes");
  EXPECT_TRUE(whole["choices"][1]["logprobs"]["content"].empty());

  ChunkStream s(m);
  std::vector<std::string> ev = events(s.start());
  ASSERT_EQ(ev.size(), 4u);  // the role chunks, then the echo of each choice
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(json::parse(ev[i])["choices"][0]["delta"]["role"], "assistant");
    const json echo = json::parse(ev[2 + i])["choices"][0];
    EXPECT_EQ(echo["index"], i);
    EXPECT_EQ(echo["delta"]["content"], "Well,");
  }
}

// best_of: the choices with the highest mean log-probability per generated token, best first,
// re-indexed, each with its own finish reason; an echo's log-probabilities do not count; usage counts
// every generated choice; log-probabilities computed only for the ranking are not returned.
TEST(OpenAIResponse, BestOfReturnsTheChoicesOfHighestMeanLogprob) {
  OpenAIRequest r;
  r.endpoint = Endpoint::kCompletions;
  r.text.n = 4;
  r.best_of_returned = 2;
  r.text.top_logprobs = 0;
  r.logprobs_hidden = true;
  const ResponseMeta m = make_meta(r);
  EXPECT_EQ(m.n, 4);
  EXPECT_EQ(m.returned, 2);
  EXPECT_FALSE(m.logprobs);
  CompletionBuilder b(m);
  const auto add = [&](int32_t index, const std::string& text, std::vector<float> logprobs) {
    TextDelta d = content(text);
    d.index = index;
    for (float lp : logprobs) d.logprobs.push_back({"t", lp, {}});
    b.add(d);
  };
  add(0, "a", {-2.0f, -2.0f});        // mean -2
  add(1, "b", {-0.5f});               // mean -0.5: the best
  add(2, "c", {-0.1f, -1.9f, -1.0f});  // mean -1: second
  add(3, "", {});                     // no tokens: last
  TextFinish f = finish("length", 5, 6);
  f.choice_reasons = {"length", "stop", "length", "stop"};
  const json j = b.finish(f);
  ASSERT_EQ(j["choices"].size(), 2u) << j;
  EXPECT_EQ(j["choices"][0]["index"], 0);
  EXPECT_EQ(j["choices"][0]["text"], "b");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(j["choices"][1]["index"], 1);
  EXPECT_EQ(j["choices"][1]["text"], "c");
  EXPECT_EQ(j["choices"][1]["finish_reason"], "length");
  EXPECT_TRUE(j["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(j["usage"]["completion_tokens"], 6);
}

TEST(OpenAIResponse, ChatCompletionShape) {
  CompletionBuilder b(chat_meta());
  b.add(content("Hello"));
  b.add(content(", world"));
  json r = b.finish(finish("stop", 7, 2));
  EXPECT_EQ(r["id"], "chatcmpl-test");
  EXPECT_EQ(r["object"], "chat.completion");
  EXPECT_EQ(r["created"], 1700000000);
  EXPECT_EQ(r["model"], "tiny");
  ASSERT_EQ(r["choices"].size(), 1u);
  const json& c = r["choices"][0];
  EXPECT_EQ(c["index"], 0);
  EXPECT_EQ(c["message"]["role"], "assistant");
  EXPECT_EQ(c["message"]["content"], "Hello, world");
  EXPECT_TRUE(c["message"]["refusal"].is_null());
  EXPECT_FALSE(c["message"].contains("tool_calls"));
  EXPECT_FALSE(c["message"].contains("reasoning_content"));
  EXPECT_TRUE(c["logprobs"].is_null());
  EXPECT_EQ(c["finish_reason"], "stop");
  EXPECT_EQ(r["usage"], (json{{"prompt_tokens", 7}, {"completion_tokens", 2}, {"total_tokens", 9}}));
}

TEST(OpenAIResponse, ChatReasoningAndToolCalls) {
  CompletionBuilder b(chat_meta());
  TextDelta d;
  d.reasoning = "Let me think.";
  b.add(d);
  TextDelta t;
  t.tool_calls.push_back({"get_weather", {{"city", "Paris"}, {"days", 2}}});
  t.tool_calls.push_back({"noop", json::object()});
  b.add(t);
  json r = b.finish(finish("tool_calls"));
  const json& m = r["choices"][0]["message"];
  EXPECT_TRUE(m["content"].is_null());  // only tool calls: content is null, as OpenAI sends it
  EXPECT_EQ(m["reasoning_content"], "Let me think.");
  ASSERT_EQ(m["tool_calls"].size(), 2u);
  const json& call = m["tool_calls"][0];
  EXPECT_EQ(call["id"].get<std::string>().rfind("call_", 0), 0u);
  EXPECT_EQ(call["type"], "function");
  EXPECT_EQ(call["function"]["name"], "get_weather");
  ASSERT_TRUE(call["function"]["arguments"].is_string());  // a JSON text, as OpenAI sends it
  EXPECT_EQ(json::parse(call["function"]["arguments"].get<std::string>()), (json{{"city", "Paris"}, {"days", 2}}));
  EXPECT_EQ(m["tool_calls"][1]["function"]["arguments"], "{}");
  EXPECT_NE(m["tool_calls"][0]["id"], m["tool_calls"][1]["id"]);
  EXPECT_EQ(r["choices"][0]["finish_reason"], "tool_calls");
}

TEST(OpenAIResponse, ToolCallsTurnStopIntoToolCalls) {
  CompletionBuilder b(chat_meta());
  TextDelta t = content("Checking.");
  t.tool_calls.push_back({"f", json::object()});
  b.add(t);
  json r = b.finish(finish("stop"));
  EXPECT_EQ(r["choices"][0]["finish_reason"], "tool_calls");
  EXPECT_EQ(r["choices"][0]["message"]["content"], "Checking.");
  CompletionBuilder len(chat_meta());
  len.add(t);
  EXPECT_EQ(len.finish(finish("length"))["choices"][0]["finish_reason"], "length");
}

TEST(OpenAIResponse, ChatLogprobs) {
  CompletionBuilder b(chat_meta(true));
  TextDelta d = content("Hi");
  d.logprobs.push_back({"Hi", -0.25f, {{"Hi", -0.25f}, {"Hey", -1.5f}}});
  d.logprobs.push_back({"\xe2\x82", -std::numeric_limits<float>::infinity(), {}});  // half a character
  b.add(d);
  json r = b.finish(finish("length"));
  const json& lp = r["choices"][0]["logprobs"];
  ASSERT_TRUE(lp.is_object());
  EXPECT_TRUE(lp["refusal"].is_null());
  ASSERT_EQ(lp["content"].size(), 2u);
  const json& first = lp["content"][0];
  EXPECT_EQ(first["token"], "Hi");
  EXPECT_FLOAT_EQ(first["logprob"].get<float>(), -0.25f);
  EXPECT_EQ(first["bytes"], json::array({72, 105}));
  ASSERT_EQ(first["top_logprobs"].size(), 2u);
  EXPECT_EQ(first["top_logprobs"][1]["token"], "Hey");
  EXPECT_FLOAT_EQ(first["top_logprobs"][1]["logprob"].get<float>(), -1.5f);
  EXPECT_EQ(first["top_logprobs"][1]["bytes"], json::array({72, 101, 121}));
  const json& second = lp["content"][1];
  // Part of a character: its raw bytes, and a token text in OpenAI's "bytes:" form.
  EXPECT_EQ(second["bytes"], json::array({0xe2, 0x82}));
  EXPECT_EQ(second["token"], "bytes:\\xe2\\x82");
  EXPECT_DOUBLE_EQ(second["logprob"].get<double>(), -9999.0);
  EXPECT_TRUE(second["top_logprobs"].empty());
  std::string text = dump_json(r);
  EXPECT_EQ(json::parse(text)["choices"][0]["logprobs"]["content"][1]["bytes"], json::array({0xe2, 0x82}));
}

TEST(OpenAIResponse, ByteTokensKeepDistinctTextsAndOffsetsCountCharacters) {
  CompletionBuilder b(completion_meta(true));
  TextDelta d = content("\xc3\xa9\xe2\x82\xac!");  // "é€!"
  d.logprobs.push_back({"\xc3\xa9", -0.1f, {{"\xc3\xa9", -0.1f}}});
  d.logprobs.push_back({"\xe2", -0.2f, {{"\xe2", -0.2f}, {"\xe3", -0.3f}, {"\xe4", -0.4f}}});
  d.logprobs.push_back({"\x82\xac", -0.3f, {}});
  d.logprobs.push_back({"!", -0.4f, {}});
  b.add(d);
  const json lp = b.finish(finish("length", 1, 4))["choices"][0]["logprobs"];
  EXPECT_EQ(lp["tokens"], json::array({"\xc3\xa9", "bytes:\\xe2", "bytes:\\x82\\xac", "!"}));
  EXPECT_EQ(lp["top_logprobs"][1].size(), 3u);  // three byte tokens, three keys
  EXPECT_FLOAT_EQ(lp["top_logprobs"][1]["bytes:\\xe4"].get<float>(), -0.4f);
  EXPECT_EQ(lp["text_offset"], json::array({0, 1, 2, 2}));  // characters, not bytes
}

// As OpenAI and vLLM answer: the sampled token is among a token's top_logprobs even when it is not
// one of the best (up to logprobs + 1 entries).
TEST(OpenAIResponse, CompletionTopLogprobsHoldTheSampledToken) {
  CompletionBuilder b(completion_meta(true));
  TextDelta d = content(" ge");
  d.logprobs.push_back({" ge", -6.7f, {{"x", -3.85f}}});
  b.add(d);
  const json lp = b.finish(finish("length", 1, 1))["choices"][0]["logprobs"];
  ASSERT_EQ(lp["top_logprobs"][0].size(), 2u);
  EXPECT_FLOAT_EQ(lp["top_logprobs"][0][" ge"].get<float>(), -6.7f);
  EXPECT_FLOAT_EQ(lp["top_logprobs"][0]["x"].get<float>(), -3.85f);
}

// text_offset is where a token's text stands in the returned text: a byte the detokenizer held back
// (here a stray one, replaced by U+FFFD once the next token came) does not shift the next token's.
TEST(OpenAIResponse, TextOffsetsFollowTheReturnedText) {
  const std::string bad = "\xff", replacement = "\xef\xbf\xbd";
  std::vector<TextDelta> deltas(4);
  deltas[0].logprobs.push_back({bad, -1.0f, {}});
  deltas[1].content = replacement + " attentio";
  deltas[1].logprobs.push_back({" attentio", -1.0f, {}});
  deltas[2].logprobs.push_back({bad, -1.0f, {}});
  deltas[3].content = replacement;
  CompletionBuilder b(completion_meta(true));
  ChunkStream stream(completion_meta(true));
  std::vector<int64_t> streamed;
  for (const TextDelta& d : deltas) {
    b.add(d);
    const std::string event = stream.delta(d);
    if (event.empty()) continue;
    const json chunk = json::parse(event.substr(6));
    const json& lp = chunk["choices"][0]["logprobs"];
    if (!lp.is_null()) {
      for (const json& o : lp["text_offset"]) streamed.push_back(o.get<int64_t>());
    }
  }
  const json r = b.finish(finish("length", 1, 3));
  EXPECT_EQ(r["choices"][0]["text"], replacement + " attentio" + replacement);
  EXPECT_EQ(r["choices"][0]["logprobs"]["text_offset"], json::array({0, 1, 10}));
  EXPECT_EQ(streamed, (std::vector<int64_t>{0, 1, 10}));
}

TEST(OpenAIResponse, TextCompletionShape) {
  CompletionBuilder b(completion_meta(true));
  TextDelta d = content(" there was");
  d.logprobs.push_back({" there", -0.5f, {{" there", -0.5f}, {" a", -1.0f}}});
  d.logprobs.push_back({" was", -0.1f, {{" was", -0.1f}}});
  b.add(d);
  json r = b.finish(finish("length", 4, 2));
  EXPECT_EQ(r["object"], "text_completion");
  EXPECT_EQ(r["id"], "cmpl-test");
  const json& c = r["choices"][0];
  EXPECT_EQ(c["text"], " there was");
  EXPECT_EQ(c["index"], 0);
  EXPECT_EQ(c["finish_reason"], "length");
  EXPECT_FALSE(c.contains("message"));
  const json& lp = c["logprobs"];
  EXPECT_EQ(lp["tokens"], json::array({" there", " was"}));
  EXPECT_EQ(lp["token_logprobs"].size(), 2u);
  EXPECT_FLOAT_EQ(lp["token_logprobs"][0].get<float>(), -0.5f);
  EXPECT_FLOAT_EQ(lp["top_logprobs"][0][" a"].get<float>(), -1.0f);
  EXPECT_EQ(lp["text_offset"], json::array({0, 6}));
  EXPECT_EQ(r["usage"]["total_tokens"], 6);
  CompletionBuilder plain(completion_meta());
  plain.add(content("x"));
  EXPECT_TRUE(plain.finish(finish("stop"))["choices"][0]["logprobs"].is_null());
}

TEST(OpenAIResponse, ChatStream) {
  ChunkStream s(chat_meta());
  std::string out = s.start();
  TextDelta r;
  r.reasoning = "hmm";
  out += s.delta(r);
  out += s.delta(content("Hel"));
  out += s.delta(TextDelta{});  // nothing to show: no event
  out += s.delta(content("lo"));
  TextDelta t;
  t.tool_calls.push_back({"f", {{"x", 1}}});
  out += s.delta(t);
  out += s.delta(t);
  out += s.finish(finish("stop"));
  std::vector<std::string> ev = events(out);
  ASSERT_EQ(ev.size(), 8u) << out;
  EXPECT_EQ(ev.back(), "[DONE]");
  std::vector<json> chunks;
  for (size_t i = 0; i + 1 < ev.size(); ++i) chunks.push_back(json::parse(ev[i]));
  for (const json& c : chunks) {
    EXPECT_EQ(c["id"], "chatcmpl-test");
    EXPECT_EQ(c["object"], "chat.completion.chunk");
    EXPECT_EQ(c["created"], 1700000000);
    EXPECT_EQ(c["model"], "tiny");
    ASSERT_EQ(c["choices"].size(), 1u);
    EXPECT_EQ(c["choices"][0]["index"], 0);
    EXPECT_FALSE(c.contains("usage"));
  }
  EXPECT_EQ(chunks[0]["choices"][0]["delta"], (json{{"role", "assistant"}, {"content", ""}}));
  EXPECT_TRUE(chunks[0]["choices"][0]["finish_reason"].is_null());
  EXPECT_EQ(chunks[1]["choices"][0]["delta"], (json{{"reasoning_content", "hmm"}}));
  EXPECT_EQ(chunks[2]["choices"][0]["delta"], (json{{"content", "Hel"}}));
  EXPECT_EQ(chunks[3]["choices"][0]["delta"], (json{{"content", "lo"}}));
  const json& call0 = chunks[4]["choices"][0]["delta"]["tool_calls"][0];
  EXPECT_EQ(call0["index"], 0);
  EXPECT_EQ(call0["type"], "function");
  EXPECT_EQ(call0["function"]["name"], "f");
  EXPECT_EQ(call0["function"]["arguments"], "{\"x\":1}");
  EXPECT_EQ(chunks[5]["choices"][0]["delta"]["tool_calls"][0]["index"], 1);
  EXPECT_EQ(chunks[6]["choices"][0]["delta"], json::object());
  EXPECT_EQ(chunks[6]["choices"][0]["finish_reason"], "tool_calls");
}

TEST(OpenAIResponse, StreamUsageChunk) {
  ChunkStream s(chat_meta(false, true));
  std::string out = s.start();
  out += s.delta(content("a"));
  out += s.finish(finish("length", 10, 1));
  std::vector<std::string> ev = events(out);
  ASSERT_EQ(ev.size(), 5u);
  EXPECT_EQ(ev[4], "[DONE]");
  for (int i = 0; i < 3; ++i) {
    json c = json::parse(ev[i]);
    ASSERT_TRUE(c.contains("usage"));
    EXPECT_TRUE(c["usage"].is_null());
  }
  EXPECT_EQ(json::parse(ev[2])["choices"][0]["finish_reason"], "length");
  json usage = json::parse(ev[3]);
  EXPECT_TRUE(usage["choices"].is_array());
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"], (json{{"prompt_tokens", 10}, {"completion_tokens", 1}, {"total_tokens", 11}}));
  EXPECT_EQ(usage["id"], "chatcmpl-test");
}

TEST(OpenAIResponse, StreamErrorEndsWithErrorEvent) {
  ChunkStream s(chat_meta());
  TextFinish f = finish("error");
  f.error = "worker 2 died";
  std::string out = s.start();
  out += s.finish(f);
  std::vector<std::string> ev = events(out);
  ASSERT_EQ(ev.size(), 2u);
  json e = json::parse(ev[1]);
  EXPECT_NE(e["error"]["message"].get<std::string>().find("worker 2 died"), std::string::npos);
  EXPECT_EQ(e["error"]["type"], "server_error");
  EXPECT_EQ(out.find("[DONE]"), std::string::npos);
  EXPECT_TRUE(finish_is_error(f));
  EXPECT_EQ(finish_error(f).status, 500);
  EXPECT_EQ(finish_error(finish("cancelled")).status, 503);
  EXPECT_FALSE(finish_is_error(finish("tool_calls")));
}

TEST(OpenAIResponse, CompletionStream) {
  ChunkStream s(completion_meta(true));
  EXPECT_EQ(s.start(), "");
  TextDelta a = content("ab");
  a.logprobs.push_back({"ab", -1.0f, {{"ab", -1.0f}}});
  TextDelta b = content("c");
  b.logprobs.push_back({"c", -2.0f, {{"c", -2.0f}}});
  std::string out = s.delta(a);
  out += s.delta(b);
  out += s.finish(finish("stop"));
  std::vector<std::string> ev = events(out);
  ASSERT_EQ(ev.size(), 4u);
  json c0 = json::parse(ev[0]), c1 = json::parse(ev[1]), last = json::parse(ev[2]);
  EXPECT_EQ(c0["object"], "text_completion");
  EXPECT_EQ(c0["choices"][0]["text"], "ab");
  EXPECT_TRUE(c0["choices"][0]["finish_reason"].is_null());
  EXPECT_EQ(c0["choices"][0]["logprobs"]["text_offset"], json::array({0}));
  EXPECT_EQ(c1["choices"][0]["logprobs"]["text_offset"], json::array({2}));  // continues over chunks
  EXPECT_EQ(last["choices"][0]["text"], "");
  EXPECT_EQ(last["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(ev[3], "[DONE]");
}

// n > 1: one choice per index, each with its own text, tool calls, offsets and finish_reason.
TEST(OpenAIResponse, ChoicesOfOneRequest) {
  ResponseMeta meta = completion_meta(true);
  meta.n = 3;
  CompletionBuilder b(meta);
  TextDelta a = content("ab");
  a.index = 2;
  a.logprobs.push_back({"ab", -1.0f, {}});
  TextDelta c = content("x");
  c.index = 0;
  c.logprobs.push_back({"x", -0.5f, {}});
  TextDelta d = content("cd");
  d.index = 2;
  d.logprobs.push_back({"cd", -2.0f, {}});
  TextDelta stray = content("never");
  stray.index = 3;  // outside the request's choices: dropped
  for (const TextDelta& x : {a, c, d, stray}) b.add(x);
  TextFinish f = finish("length", 4, 9);
  f.choice_reasons = {"stop", "length", "length"};
  const json r = b.finish(f);
  ASSERT_EQ(r["choices"].size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(r["choices"][i]["index"], i);
  EXPECT_EQ(r["choices"][0]["text"], "x");
  EXPECT_EQ(r["choices"][1]["text"], "");
  EXPECT_EQ(r["choices"][2]["text"], "abcd");
  EXPECT_EQ(r["choices"][2]["logprobs"]["text_offset"], json::array({0, 2}));
  EXPECT_EQ(r["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(r["choices"][2]["finish_reason"], "length");
  EXPECT_EQ(r["usage"], (json{{"prompt_tokens", 4}, {"completion_tokens", 9}, {"total_tokens", 13}}));

  ResponseMeta chat = chat_meta(false, true);
  chat.n = 2;
  ChunkStream s(chat);
  std::string out = s.start();  // a role chunk per choice
  TextDelta call;
  call.index = 1;
  call.tool_calls.push_back({"f", {{"x", 1}}});
  out += s.delta(call);
  TextDelta text0 = content("hi");
  out += s.delta(text0);
  TextFinish first = finish("stop", 4, 2);
  out += s.choice_finish(1, first);  // choice 1 ended first: its call makes it tool_calls
  out += s.delta(call);              // nothing more for an ended choice
  TextFinish total = finish("stop", 4, 5);
  total.choice_reasons = {"length", "stop"};
  out += s.finish(total);
  std::vector<std::string> ev = events(out);
  ASSERT_EQ(ev.size(), 8u) << out;
  std::vector<json> chunks;
  for (size_t i = 0; i + 2 < ev.size(); ++i) chunks.push_back(json::parse(ev[i]));
  EXPECT_EQ(chunks[0]["choices"][0]["index"], 0);
  EXPECT_EQ(chunks[1]["choices"][0]["index"], 1);
  EXPECT_EQ(chunks[1]["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(chunks[2]["choices"][0]["index"], 1);
  EXPECT_EQ(chunks[2]["choices"][0]["delta"]["tool_calls"][0]["index"], 0);
  EXPECT_EQ(chunks[3]["choices"][0]["index"], 0);
  EXPECT_EQ(chunks[3]["choices"][0]["delta"]["content"], "hi");
  EXPECT_EQ(chunks[4]["choices"][0]["index"], 1);
  EXPECT_EQ(chunks[4]["choices"][0]["finish_reason"], "tool_calls");
  EXPECT_EQ(chunks[5]["choices"][0]["index"], 0);
  EXPECT_EQ(chunks[5]["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(json::parse(ev[6])["usage"]["completion_tokens"], 5);
  EXPECT_EQ(ev[7], "[DONE]");
}

TEST(OpenAIResponse, Models) {
  json m = models_json("tiny", 123, 4096);
  EXPECT_EQ(m["object"], "list");
  ASSERT_EQ(m["data"].size(), 1u);
  EXPECT_EQ(m["data"][0]["id"], "tiny");
  EXPECT_EQ(m["data"][0]["object"], "model");
  EXPECT_EQ(m["data"][0]["created"], 123);
  EXPECT_EQ(m["data"][0]["owned_by"], "shardlm");
  EXPECT_EQ(m["data"][0]["max_model_len"], 4096);
}

TEST(OpenAIResponse, ErrorShape) {
  ApiError e = api_error(RequestErrorCode::kContextLength, "too long");
  json j = e.to_json();
  EXPECT_EQ(j, (json{{"error", {{"message", "too long"}, {"type", "invalid_request_error"}, {"param", nullptr},
                                {"code", "context_length_exceeded"}}}}));
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(api_error(RequestErrorCode::kInvalidRequest, "x").status, 400);
  ApiError q = api_error(RequestErrorCode::kQueueFull, "busy");
  EXPECT_EQ(q.status, 429);
  EXPECT_GT(q.retry_after_s, 0);
  EXPECT_EQ(api_error(RequestErrorCode::kUnavailable, "x").status, 503);
  EXPECT_EQ(api_error(RequestErrorCode::kNotFound, "x").status, 404);
  EXPECT_EQ(api_error(RequestErrorCode::kInternal, "x").status, 500);
  EXPECT_EQ(model_not_found("gpt-4").to_json()["error"]["code"], "model_not_found");
  EXPECT_EQ(unauthorized(false).status, 401);
  EXPECT_EQ(body_too_large(10).status, 413);
  EXPECT_EQ(method_not_allowed("GET", "/v1/completions").status, 405);
  EXPECT_EQ(not_found_route("GET", "/nope").status, 404);
}

TEST(OpenAIResponse, ExceptionsAreClassified) {
  auto classify = [](auto thrower) {
    try {
      thrower();
    } catch (...) {
      return current_api_error();
    }
    return ApiError{};
  };
  EXPECT_EQ(classify([] { throw RequestError(RequestErrorCode::kQueueFull, "full"); }).status, 429);
  EXPECT_EQ(classify([] { fail("messages[0]: unknown role"); }).status, 400);
  EXPECT_EQ(classify([] { throw std::runtime_error("boom"); }).status, 500);
  EXPECT_EQ(classify([] { fail_param("temperature", "bad"); }).param, "temperature");
}

}  // namespace
}  // namespace shardlm::http
