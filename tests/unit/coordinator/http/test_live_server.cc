// The HTTP server in front of the real text service, scheduler and engine on the tiny golden model
// (tests/data/dense), over real local sockets.
#include <gtest/gtest.h>

#include <limits>

#include "common/version.h"
#include "coordinator/guided_decoding.h"
#include "coordinator/json_schema_acceptor.h"
#include "coordinator/http/http_server.h"
#include "coordinator/scheduler.h"
#include "coordinator/text_service.h"
#include "engine/engine.h"
#include "http_test_support.h"
#include "model/tokenizer.h"
#include "model/tokenizer_utf8.h"

namespace shardlm::http {
namespace {

using nlohmann::json;
using testing::HttpResult;
using testing::ScriptedBackend;
using testing::sse_payloads;
using testing::TestClient;

const std::string kKey = "Authorization: Bearer sk-live";

class LiveServer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string dir = std::string(SHARDLM_TEST_DATA) + "/dense";
    EngineOptions eo;
    eo.model_dir = dir;
    eo.threads = 2;
    eo.max_context = 256;
    eo.max_sequences = 4;
    eo.kv_tokens = 1024;
    engine_ = open_engine(eo).release();
    tokenizer_ = new Tokenizer(Tokenizer::load(dir));
    scheduler_ = new Scheduler(*engine_, SchedulerOptions{});
    SchedulerHooks hooks;
    hooks.finished = [](const GenerationSummary& s) {
      if (s.reason == FinishReason::kCancelled) {
        cancelled_tokens_ = s.completion_tokens;
        ++cancelled_;
      }
    };
    scheduler_->set_hooks(hooks);
    service_ = new TextService(*scheduler_, *tokenizer_, engine_->config(), "tiny");
    HttpServerOptions ho;
    ho.port = 0;
    ho.api_keys = {"sk-live"};
    ho.max_body_bytes = 64 * 1024;
    ho.threads = 2;
    server_ = new HttpServer(*service_, ho);
    server_->start();
  }
  static void TearDownTestSuite() {
    server_->stop();
    scheduler_->stop(false);
    delete server_;
    delete service_;
    delete scheduler_;
    delete tokenizer_;
    delete engine_;
  }

  static HttpResult post(TestClient& c, const std::string& target, const json& body) {
    return c.request("POST", target, body.dump(), {kKey});
  }
  static json chat(int max_tokens) {
    return {{"model", "tiny"},
            {"messages", json::array({{{"role", "system"}, {"content", "You are terse."}},
                                      {{"role", "user"}, {"content", "Say something about the sea."}}})},
            {"max_tokens", max_tokens},
            {"temperature", 0}};
  }
  static std::string stream_text(const std::string& body, const char* field, json* usage = nullptr, std::string* finish = nullptr) {
    std::string text;
    std::vector<std::string> ev = sse_payloads(body);
    EXPECT_FALSE(ev.empty());
    if (ev.empty()) return text;
    EXPECT_EQ(ev.back(), "[DONE]");
    for (size_t i = 0; i + 1 < ev.size(); ++i) {
      json c = json::parse(ev[i]);
      if (c["choices"].empty()) {
        if (usage) *usage = c["usage"];
        continue;
      }
      const json& choice = c["choices"][0];
      const json& holder = choice.contains("delta") ? choice["delta"] : choice;
      if (holder.contains(field) && holder[field].is_string()) text += holder[field].get<std::string>();
      if (finish && choice["finish_reason"].is_string()) *finish = choice["finish_reason"];
    }
    return text;
  }

  static StepEngine* engine_;
  static Tokenizer* tokenizer_;
  static Scheduler* scheduler_;
  static TextService* service_;
  static HttpServer* server_;
  static std::atomic<int> cancelled_;
  static std::atomic<int64_t> cancelled_tokens_;
};
std::atomic<int> LiveServer::cancelled_{0};
std::atomic<int64_t> LiveServer::cancelled_tokens_{0};

StepEngine* LiveServer::engine_ = nullptr;
Tokenizer* LiveServer::tokenizer_ = nullptr;
Scheduler* LiveServer::scheduler_ = nullptr;
TextService* LiveServer::service_ = nullptr;
HttpServer* LiveServer::server_ = nullptr;

TEST_F(LiveServer, ReadyHealthModels) {
  TestClient c(server_->port());
  server_->set_ready(false);
  EXPECT_EQ(c.request("GET", "/ready").status, 503);
  server_->set_ready(true);
  EXPECT_EQ(c.request("GET", "/ready").status, 200);
  EXPECT_EQ(c.request("GET", "/health").status, 200);
  HttpResult v = c.request("GET", "/version");  // open, as /health
  ASSERT_EQ(v.status, 200);
  EXPECT_EQ(v.json()["version"], kVersion);
  EXPECT_EQ(c.request("POST", "/version", "{}").status, 405);
  HttpResult m = c.request("GET", "/v1/models", "", {kKey});
  ASSERT_EQ(m.status, 200);
  EXPECT_EQ(m.json()["data"][0]["id"], "tiny");
  EXPECT_EQ(m.json()["data"][0]["max_model_len"], 256);
}

// vLLM's /tokenize and /detokenize: the tokens a generation sees (a chat's count is its usage's
// prompt_tokens), vocabulary pieces, the text back, and errors named.
TEST_F(LiveServer, TokenizeAndDetokenize) {
  TestClient c(server_->port());
  HttpResult t = post(c, "/tokenize", {{"model", "tiny"}, {"prompt", "The sea is wide"}});
  ASSERT_EQ(t.status, 200) << t.body;
  const std::vector<int32_t> ids = tokenizer_->encode("The sea is wide", true);
  EXPECT_EQ(t.json()["tokens"].get<std::vector<int32_t>>(), ids);
  EXPECT_EQ(t.json()["count"], ids.size());
  EXPECT_EQ(t.json()["max_model_len"], 256);
  EXPECT_TRUE(t.json()["token_strs"].is_null());
  HttpResult bare = post(c, "/tokenize", {{"prompt", "The sea is wide"}, {"add_special_tokens", false}, {"return_token_strs", true}});
  ASSERT_EQ(bare.status, 200) << bare.body;
  const std::vector<int32_t> bare_ids = tokenizer_->encode("The sea is wide", false);
  EXPECT_EQ(bare.json()["tokens"].get<std::vector<int32_t>>(), bare_ids);
  ASSERT_EQ(bare.json()["token_strs"].size(), bare_ids.size());
  for (size_t i = 0; i < bare_ids.size(); ++i) EXPECT_EQ(bare.json()["token_strs"][i], tokenizer_->piece(bare_ids[i]));

  json messages = chat(1)["messages"];
  HttpResult ct = post(c, "/tokenize", {{"model", "tiny"}, {"messages", messages}});
  ASSERT_EQ(ct.status, 200) << ct.body;
  HttpResult done = post(c, "/v1/chat/completions", chat(1));
  ASSERT_EQ(done.status, 200) << done.body;
  EXPECT_EQ(ct.json()["count"], done.json()["usage"]["prompt_tokens"]);
  // With tools, tool_choice applied as the completion applies it (none drops the declarations).
  const json tools = json::array({{{"type", "function"},
                                   {"function", {{"name", "get_weather"}, {"parameters", {{"type", "object"}}}}}}});
  for (const char* choice : {"auto", "none", "required"}) {
    json with_tools = chat(1);
    with_tools["tools"] = tools;
    with_tools["tool_choice"] = choice;
    HttpResult counted = post(c, "/tokenize", {{"messages", messages}, {"tools", tools}, {"tool_choice", choice}});
    HttpResult used = post(c, "/v1/chat/completions", with_tools);
    ASSERT_EQ(counted.status, 200) << counted.body;
    ASSERT_EQ(used.status, 200) << used.body;
    EXPECT_EQ(counted.json()["count"], used.json()["usage"]["prompt_tokens"]) << choice;
  }
  HttpResult open_turn = post(c, "/tokenize", {{"messages", messages}, {"add_generation_prompt", false}});
  json continued = messages;
  continued.push_back({{"role", "assistant"}, {"content", "Well"}});
  HttpResult cont = post(c, "/tokenize", {{"messages", continued}, {"add_generation_prompt", false}, {"continue_final_message", true},
                                           {"return_token_strs", true}});
  ASSERT_EQ(cont.status, 200) << cont.body;
  std::string joined;
  const json cont_body = cont.json();
  for (const json& piece : cont_body["token_strs"]) joined += piece.get<std::string>();
  ASSERT_GE(joined.size(), 10u);
  EXPECT_EQ(joined.substr(joined.size() - 10), "model\nWell") << joined;  // the turn is left open
  EXPECT_EQ(post(c, "/tokenize", {{"messages", continued}, {"continue_final_message", true}}).status, 400);
  ASSERT_EQ(open_turn.status, 200) << open_turn.body;
  EXPECT_LT(open_turn.json()["count"].get<int>(), ct.json()["count"].get<int>());

  HttpResult d = post(c, "/detokenize", {{"model", "tiny"}, {"tokens", ids}});
  ASSERT_EQ(d.status, 200) << d.body;
  EXPECT_EQ(d.json()["prompt"], tokenizer_->decode(ids));
  EXPECT_NE(d.json()["prompt"].get<std::string>().find("The sea is wide"), std::string::npos);

  EXPECT_EQ(c.request("POST", "/tokenize", json{{"prompt", "x"}}.dump()).status, 401);  // keys guard it as /v1/
  EXPECT_EQ(c.request("GET", "/tokenize", "", {kKey}).status, 405);
  HttpResult other = post(c, "/tokenize", {{"model", "other"}, {"prompt", "x"}});
  EXPECT_EQ(other.status, 404);
  EXPECT_EQ(other.json()["error"]["code"], "model_not_found");
  HttpResult other_d = post(c, "/detokenize", {{"model", "other"}, {"tokens", {2}}});
  EXPECT_EQ(other_d.status, 404);
  EXPECT_EQ(other_d.json()["error"]["code"], "model_not_found");
  HttpResult both = post(c, "/tokenize", {{"prompt", "x"}, {"messages", messages}});
  EXPECT_EQ(both.status, 400);
  EXPECT_EQ(both.json()["error"]["param"], "messages");
  EXPECT_EQ(post(c, "/tokenize", json::object()).status, 400);
  HttpResult past = post(c, "/detokenize", {{"tokens", {2, tokenizer_->vocab_size()}}});
  EXPECT_EQ(past.status, 400);
  EXPECT_NE(past.json()["error"]["message"].get<std::string>().find("tokens[1]"), std::string::npos) << past.body;
  HttpResult negative = post(c, "/detokenize", {{"tokens", {-1}}});
  EXPECT_EQ(negative.status, 400);
  EXPECT_EQ(negative.json()["error"]["param"], "tokens[0]");
}

TEST_F(LiveServer, ChatNonStreamedEqualsStreamed) {
  TestClient c(server_->port());
  HttpResult r = post(c, "/v1/chat/completions", chat(12));
  ASSERT_EQ(r.status, 200) << r.body;
  json j = r.json();
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["model"], "tiny");
  const json& choice = j["choices"][0];
  EXPECT_EQ(choice["message"]["role"], "assistant");
  const std::string finish = choice["finish_reason"];
  EXPECT_TRUE(finish == "stop" || finish == "length" || finish == "tool_calls") << finish;
  const json& usage = j["usage"];
  EXPECT_GT(usage["prompt_tokens"].get<int>(), 10);
  EXPECT_GE(usage["completion_tokens"].get<int>(), 1);
  EXPECT_LE(usage["completion_tokens"].get<int>(), 12);
  EXPECT_EQ(usage["total_tokens"], usage["prompt_tokens"].get<int>() + usage["completion_tokens"].get<int>());

  // Greedy: the same text again, and the same text streamed.
  HttpResult again = post(c, "/v1/chat/completions", chat(12));
  EXPECT_EQ(again.json()["choices"][0]["message"], choice["message"]);
  json sb = chat(12);
  sb["stream"] = true;
  sb["stream_options"] = {{"include_usage", true}};
  HttpResult s = post(c, "/v1/chat/completions", sb);
  ASSERT_EQ(s.status, 200);
  EXPECT_EQ(s.header("content-type"), "text/event-stream");
  json stream_usage;
  std::string stream_finish;
  std::string text = stream_text(s.body, "content", &stream_usage, &stream_finish);
  EXPECT_EQ(text, choice["message"]["content"].is_string() ? choice["message"]["content"].get<std::string>() : "");
  EXPECT_EQ(stream_usage, usage);
  EXPECT_EQ(stream_finish, finish);
}

// n choices: streamed and not, each choice's text is that of a request with seed + its index.
// best_of: of best_of choices (seed + index each, as n's), the one whose sampled tokens have the
// highest mean log-probability, without log-probabilities unless asked for.
TEST_F(LiveServer, BestOfReturnsTheMostLikelyChoice) {
  TestClient c(server_->port());
  json all = {{"model", "tiny"}, {"prompt", "The sea is"}, {"max_tokens", 6}, {"temperature", 1.0}, {"seed", 17},
              {"n", 4}, {"logprobs", 0}};
  const json every = post(c, "/v1/completions", all).json();
  ASSERT_EQ(every["choices"].size(), 4u) << every;
  std::string best_text;
  double best_score = -std::numeric_limits<double>::infinity();
  for (const json& ch : every["choices"]) {
    const json& lps = ch["logprobs"]["token_logprobs"];
    if (lps.empty()) continue;
    double sum = 0.0;
    for (const json& lp : lps) sum += lp.get<double>();
    if (sum / static_cast<double>(lps.size()) > best_score) {
      best_score = sum / static_cast<double>(lps.size());
      best_text = ch["text"];
    }
  }
  json best = all;
  best.erase("n");
  best.erase("logprobs");
  best["best_of"] = 4;
  const json one = post(c, "/v1/completions", best).json();
  ASSERT_EQ(one["choices"].size(), 1u) << one;
  EXPECT_EQ(one["choices"][0]["index"], 0);
  EXPECT_EQ(one["choices"][0]["text"], best_text);
  EXPECT_TRUE(one["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(one["usage"]["completion_tokens"], every["usage"]["completion_tokens"]);
  best["stream"] = true;
  HttpResult refused = post(c, "/v1/completions", best);
  EXPECT_EQ(refused.status, 400);
  EXPECT_EQ(refused.json()["error"]["param"], "best_of");
}

TEST_F(LiveServer, ChoicesStreamedAndNot) {
  TestClient c(server_->port());
  json body = {{"model", "tiny"}, {"prompt", "The sea is"}, {"max_tokens", 10}, {"temperature", 1.0}, {"seed", 41}, {"n", 3}};
  HttpResult r = post(c, "/v1/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = r.json();
  ASSERT_EQ(j["choices"].size(), 3u);
  int64_t completion = 0;
  for (int i = 0; i < 3; ++i) {
    json one = body;
    one.erase("n");
    one["seed"] = 41 + i;
    const json single = post(c, "/v1/completions", one).json();
    EXPECT_EQ(j["choices"][i]["index"], i);
    EXPECT_EQ(j["choices"][i]["text"], single["choices"][0]["text"]) << "choice " << i;
    EXPECT_EQ(j["choices"][i]["finish_reason"], single["choices"][0]["finish_reason"]);
    completion += single["usage"]["completion_tokens"].get<int64_t>();
    EXPECT_EQ(j["usage"]["prompt_tokens"], single["usage"]["prompt_tokens"]);
  }
  EXPECT_EQ(j["usage"]["completion_tokens"], completion);

  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  HttpResult s = post(c, "/v1/completions", body);
  ASSERT_EQ(s.status, 200) << s.body;
  std::vector<std::string> texts(3);
  std::vector<int> finishes(3, 0);
  json usage;
  std::vector<std::string> ev = sse_payloads(s.body);
  ASSERT_FALSE(ev.empty());
  EXPECT_EQ(ev.back(), "[DONE]");
  for (size_t e = 0; e + 1 < ev.size(); ++e) {
    const json chunk = json::parse(ev[e]);
    if (chunk["choices"].empty()) {
      usage = chunk["usage"];
      continue;
    }
    const json& choice = chunk["choices"][0];
    const size_t i = choice["index"].get<size_t>();
    ASSERT_LT(i, 3u);
    EXPECT_EQ(finishes[i], 0) << "choice " << i << " has text after its finish";
    texts[i] += choice["text"].get<std::string>();
    if (choice["finish_reason"].is_string()) {
      ++finishes[i];
      EXPECT_EQ(choice["finish_reason"], j["choices"][i]["finish_reason"]);
    }
  }
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(texts[static_cast<size_t>(i)], j["choices"][i]["text"]) << "choice " << i;
    EXPECT_EQ(finishes[static_cast<size_t>(i)], 1) << "choice " << i;
  }
  EXPECT_EQ(usage, j["usage"]);

  json chat_body = chat(6);
  chat_body["n"] = 2;
  const json two = post(c, "/v1/chat/completions", chat_body).json();
  ASSERT_EQ(two["choices"].size(), 2u);
  EXPECT_EQ(two["choices"][0]["message"], two["choices"][1]["message"]);  // greedy: the same twice
  chat_body["n"] = 129;
  HttpResult bad = post(c, "/v1/chat/completions", chat_body);
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.json()["error"]["param"], "n");
}

// echo lists the prompt's tokens with their log-probabilities as the output's: a generated text, sent
// back as part of a prompt, gets the log-probabilities it was generated with. vLLM's prompt_logprobs
// holds each prompt token with its rank; streamed as non-streamed; chat's at the top level.
TEST_F(LiveServer, EchoAndPromptLogprobs) {
  TestClient c(server_->port());
  const std::string prompt = "The sea is";
  // Two tokens the tokenizer reads back as they were generated (" and", " wei").
  json gen = {{"model", "tiny"}, {"prompt", prompt}, {"max_tokens", 2}, {"temperature", 0}, {"logprobs", 2}, {"ignore_eos", true}};
  const json g = post(c, "/v1/completions", gen).json();
  const std::string text = g["choices"][0]["text"];
  const json& glp = g["choices"][0]["logprobs"];
  json echo = {{"model", "tiny"}, {"prompt", prompt + text}, {"max_tokens", 2}, {"temperature", 0},
               {"logprobs", 2}, {"echo", true}, {"prompt_logprobs", 2}, {"ignore_eos", true}};
  HttpResult r = post(c, "/v1/completions", echo);
  ASSERT_EQ(r.status, 200) << r.body;
  const json e = r.json();
  const json& choice = e["choices"][0];
  EXPECT_EQ(choice["text"].get<std::string>().rfind(prompt + text, 0), 0u) << choice["text"];
  const json& lp = choice["logprobs"];
  const size_t prompt_tokens = e["usage"]["prompt_tokens"].get<size_t>();
  ASSERT_EQ(lp["tokens"].size(), prompt_tokens + 2);
  EXPECT_EQ(lp["tokens"][0], "<bos>");
  EXPECT_TRUE(lp["token_logprobs"][0].is_null());
  EXPECT_TRUE(lp["top_logprobs"][0].is_null());
  const size_t generated = glp["tokens"].size();
  ASSERT_GT(prompt_tokens, generated);
  for (size_t k = 0; k < generated; ++k) {
    const size_t at = prompt_tokens - generated + k;
    ASSERT_EQ(lp["tokens"][at], glp["tokens"][k]) << "the text was tokenized otherwise";
    EXPECT_NEAR(lp["token_logprobs"][at].get<double>(), glp["token_logprobs"][k].get<double>(), 1e-4) << "token " << k;
    EXPECT_EQ(lp["text_offset"][at].get<int64_t>(), static_cast<int64_t>(prompt.size()) + glp["text_offset"][k].get<int64_t>());
  }
  const json& pl = choice["prompt_logprobs"];
  ASSERT_EQ(pl.size(), prompt_tokens);
  EXPECT_TRUE(pl[0].is_null());
  for (size_t i = 1; i < prompt_tokens; ++i) {
    ASSERT_TRUE(pl[i].is_object());
    EXPECT_GE(pl[i].size(), 2u);  // the prompt token and the best two, which may include it
    EXPECT_LE(pl[i].size(), 3u);
    bool found = false;
    for (const auto& [id, entry] : pl[i].items()) {
      EXPECT_GE(entry["rank"].get<int64_t>(), 1);
      if (std::abs(entry["logprob"].get<double>() - lp["token_logprobs"][i].get<double>()) < 1e-6) found = true;
    }
    EXPECT_TRUE(found) << "position " << i;
  }

  json streamed = echo;
  streamed["stream"] = true;
  HttpResult s = post(c, "/v1/completions", streamed);
  ASSERT_EQ(s.status, 200);
  std::string stream_text;
  json stream_prompt_logprobs, stream_tokens = json::array();
  for (const std::string& ev : sse_payloads(s.body)) {
    if (ev == "[DONE]") continue;
    const json chunk = json::parse(ev);
    const json& ch = chunk["choices"][0];
    stream_text += ch["text"].get<std::string>();
    if (ch.contains("prompt_logprobs")) stream_prompt_logprobs = ch["prompt_logprobs"];
    if (ch["logprobs"].is_object()) {
      for (const json& t : ch["logprobs"]["tokens"]) stream_tokens.push_back(t);
    }
  }
  EXPECT_EQ(stream_text, choice["text"]);
  EXPECT_EQ(stream_prompt_logprobs, pl);
  EXPECT_EQ(stream_tokens, lp["tokens"]);

  // Echo without log-probabilities: the prompt, then the output.
  json bare = {{"model", "tiny"}, {"prompt", prompt}, {"max_tokens", 2}, {"temperature", 0}, {"echo", true}, {"ignore_eos", true}};
  EXPECT_EQ(post(c, "/v1/completions", bare).json()["choices"][0]["text"], prompt + text);

  json chat_body = chat(3);
  chat_body["prompt_logprobs"] = 0;
  const json cj = post(c, "/v1/chat/completions", chat_body).json();
  ASSERT_TRUE(cj["prompt_logprobs"].is_array()) << cj;
  EXPECT_EQ(cj["prompt_logprobs"].size(), cj["usage"]["prompt_tokens"].get<size_t>());
  EXPECT_TRUE(cj["prompt_logprobs"][0].is_null());
  EXPECT_EQ(cj["prompt_logprobs"][1].size(), 1u);
  // Streamed, chat's come once, beside the choices, as in the response that is not streamed.
  chat_body["stream"] = true;
  chat_body["n"] = 2;
  int seen = 0;
  for (const std::string& ev : sse_payloads(post(c, "/v1/chat/completions", chat_body).body)) {
    if (ev == "[DONE]") continue;
    const json chunk = json::parse(ev);
    if (chunk.contains("prompt_logprobs")) {
      ++seen;
      EXPECT_EQ(chunk["prompt_logprobs"], cj["prompt_logprobs"]);
    }
    for (const json& ch : chunk["choices"]) EXPECT_FALSE(ch.contains("prompt_logprobs"));
  }
  EXPECT_EQ(seen, 1);

  // vLLM's chat echo: the continued assistant message, then what the model added, streamed or not.
  json cont = {{"model", "tiny"}, {"max_tokens", 3}, {"temperature", 0}, {"ignore_eos", true},
               {"add_generation_prompt", false}, {"continue_final_message", true},
               {"messages", {{{"role", "user"}, {"content", "Tell me"}}, {{"role", "assistant"}, {"content", "Once upon"}}}}};
  const std::string added = post(c, "/v1/chat/completions", cont).json()["choices"][0]["message"]["content"];
  cont["echo"] = true;
  EXPECT_EQ(post(c, "/v1/chat/completions", cont).json()["choices"][0]["message"]["content"], "Once upon" + added);
  cont["stream"] = true;
  std::string streamed_chat;
  for (const std::string& ev : sse_payloads(post(c, "/v1/chat/completions", cont).body)) {
    if (ev == "[DONE]") continue;
    const json delta = json::parse(ev)["choices"][0]["delta"];
    if (delta.contains("content")) streamed_chat += delta["content"].get<std::string>();
  }
  EXPECT_EQ(streamed_chat, "Once upon" + added);
}

// Guided decoding through the API: a choice, streamed or not, is one of the list; a JSON object
// request's content is JSON (whole when the model ended it).
TEST_F(LiveServer, GuidedDecoding) {
  TestClient c(server_->port());
  json body = {{"model", "tiny"}, {"prompt", "Is the sea blue?"}, {"max_tokens", 8}, {"temperature", 1.0}, {"seed", 5},
               {"n", 3}, {"guided_choice", {"yes", "no"}}};
  const json j = post(c, "/v1/completions", body).json();
  ASSERT_EQ(j["choices"].size(), 3u) << j;
  for (const json& ch : j["choices"]) {
    EXPECT_TRUE(ch["text"] == "yes" || ch["text"] == "no") << ch;
    EXPECT_EQ(ch["finish_reason"], "stop");
  }
  // Log-probabilities of guided tokens list only tokens the constraint allows (here fewer than asked for).
  json with_lp = body;
  with_lp["logprobs"] = 3;
  with_lp["n"] = 1;
  const json lj = post(c, "/v1/completions", with_lp).json();
  for (const json& top : lj["choices"][0]["logprobs"]["top_logprobs"]) {
    for (const auto& [token, lp] : top.items()) EXPECT_GT(lp.get<double>(), -1000.0) << token;
  }

  body["stream"] = true;
  body["n"] = 1;
  HttpResult s = post(c, "/v1/completions", body);
  ASSERT_EQ(s.status, 200);
  std::string text;
  for (const std::string& ev : sse_payloads(s.body)) {
    if (ev != "[DONE]") text += json::parse(ev)["choices"][0]["text"].get<std::string>();
  }
  EXPECT_TRUE(text == "yes" || text == "no") << text;

  json chat_body = chat(30);
  chat_body["temperature"] = 1.0;
  chat_body["seed"] = 2;
  chat_body["response_format"] = {{"type", "json_object"}};
  const json cj = post(c, "/v1/chat/completions", chat_body).json();
  const std::string content = cj["choices"][0]["message"]["content"].is_string() ? cj["choices"][0]["message"]["content"].get<std::string>() : "";
  JsonAcceptor a;
  EXPECT_TRUE(a.feed(content)) << content;
  if (cj["choices"][0]["finish_reason"] == "stop") {
    EXPECT_TRUE(json::parse(content).is_object()) << content;
  }

  chat_body["chat_template_kwargs"] = {{"enable_thinking", true}};
  HttpResult bad = post(c, "/v1/chat/completions", chat_body);
  EXPECT_EQ(bad.status, 400);

  // A JSON Schema (streamed): the text read back is JSON the schema's reader accepts.
  const json schema = {{"type", "object"},
                       {"properties", {{"ok", {{"type", "boolean"}}}, {"n", {{"type", "integer"}}}}},
                       {"required", {"n", "ok"}}};
  json sb = {{"model", "tiny"}, {"prompt", "Answer:"}, {"max_tokens", 40}, {"temperature", 1.0}, {"seed", 9}, {"stream", true},
             {"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "a"}, {"schema", schema}}}}}};
  HttpResult ss = post(c, "/v1/completions", sb);
  ASSERT_EQ(ss.status, 200) << ss.body;
  std::string schema_text;
  for (const std::string& ev : sse_payloads(ss.body)) {
    if (ev != "[DONE]") schema_text += json::parse(ev)["choices"][0]["text"].get<std::string>();
  }
  SchemaAcceptor reader(JsonSchema::compile(schema));
  EXPECT_TRUE(reader.feed(schema_text)) << schema_text;
  sb["response_format"]["json_schema"]["schema"] = {{"type", "string"}, {"format", "email"}};
  HttpResult unsupported = post(c, "/v1/completions", sb);
  EXPECT_EQ(unsupported.status, 400);
  EXPECT_NE(unsupported.json()["error"]["message"].get<std::string>().find("'format'"), std::string::npos) << unsupported.body;
}

TEST_F(LiveServer, CompletionsWithLogprobs) {
  TestClient c(server_->port());
  json b = {{"model", "tiny"}, {"prompt", "The sea is"}, {"max_tokens", 5}, {"temperature", 0}, {"logprobs", 2}, {"ignore_eos", true}};
  HttpResult r = post(c, "/v1/completions", b);
  ASSERT_EQ(r.status, 200) << r.body;
  json j = r.json();
  EXPECT_EQ(j["object"], "text_completion");
  const json& choice = j["choices"][0];
  EXPECT_EQ(choice["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["completion_tokens"], 5);
  EXPECT_EQ(j["usage"]["prompt_tokens"], static_cast<int>(tokenizer_->encode("The sea is").size()));
  const json& lp = choice["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), 5u);
  std::string joined;  // the tokens' bytes ("bytes:\\xNN" for part of a character)
  for (size_t i = 0; i < 5; ++i) {
    const std::string token = lp["tokens"][i].get<std::string>();
    if (token.rfind("bytes:", 0) == 0) {
      for (size_t k = 6; k + 4 <= token.size(); k += 4) {
        joined += static_cast<char>(std::stoi(token.substr(k + 2, 2), nullptr, 16));
      }
    } else {
      joined += token;
    }
    EXPECT_LE(lp["token_logprobs"][i].get<double>(), 0.0);
    EXPECT_LE(lp["top_logprobs"][i].size(), 2u);
    EXPECT_GE(lp["top_logprobs"][i].size(), 1u);
  }
  // The text is the tokens' bytes (5 tokens: whole characters; the sixth greedy token would be a
  // stray byte, which the text replaces, with the byte run it ends, by U+FFFD).
  EXPECT_EQ(joined, choice["text"]);
  b["stream"] = true;
  b.erase("logprobs");
  HttpResult s = post(c, "/v1/completions", b);
  EXPECT_EQ(stream_text(s.body, "text"), choice["text"]);
}

// presence_penalty / frequency_penalty / repetition_penalty reach the sampling: the greedy text
// changes (the tiny model repeats itself without them); out of range is a 400 naming the field.
TEST_F(LiveServer, PenaltiesChangeTheGreedyText) {
  TestClient c(server_->port());
  json b = {{"model", "tiny"}, {"prompt", "The sea is"}, {"max_tokens", 24}, {"temperature", 0}, {"ignore_eos", true}};
  HttpResult plain = post(c, "/v1/completions", b);
  ASSERT_EQ(plain.status, 200) << plain.body;
  for (const char* key : {"presence_penalty", "frequency_penalty", "repetition_penalty"}) {
    json p = b;
    p[key] = 2.0;
    HttpResult r = post(c, "/v1/completions", p);
    ASSERT_EQ(r.status, 200) << key << ": " << r.body;
    EXPECT_NE(r.json()["choices"][0]["text"], plain.json()["choices"][0]["text"]) << key;
    EXPECT_EQ(r.json()["usage"]["completion_tokens"], 24) << key;
    p[key] = -3.0;
    HttpResult bad = post(c, "/v1/completions", p);
    EXPECT_EQ(bad.status, 400) << key;
    EXPECT_EQ(bad.json()["error"]["param"], key);
  }
  // logit_bias +100 on one token makes the greedy text that token over and over; a token outside
  // the vocabulary is a 400.
  const int32_t x = tokenizer_->encode("x", /*add_bos=*/false).at(0);
  json biased = b;
  biased["logit_bias"] = {{std::to_string(x), 100}};
  biased["max_tokens"] = 6;
  HttpResult r = post(c, "/v1/completions", biased);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["choices"][0]["text"], "xxxxxx");
  biased["logit_bias"] = {{std::to_string(tokenizer_->vocab_size()), 1}};
  HttpResult outside = post(c, "/v1/completions", biased);
  EXPECT_EQ(outside.status, 400) << outside.body;
  EXPECT_NE(outside.json()["error"]["message"].get<std::string>().find("outside the vocabulary"), std::string::npos);
}

TEST_F(LiveServer, Errors) {
  TestClient c(server_->port());
  HttpResult noauth = c.request("POST", "/v1/chat/completions", chat(4).dump());
  EXPECT_EQ(noauth.status, 401);
  EXPECT_EQ(noauth.json()["error"]["code"], "invalid_api_key");
  EXPECT_EQ(c.request("GET", "/v1/nowhere", "", {kKey}).status, 404);
  HttpResult bad = c.request("POST", "/v1/chat/completions", "{\"model\":", {kKey});
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.json()["error"]["type"], "invalid_request_error");
  HttpResult ctx = post(c, "/v1/chat/completions", chat(100000));
  EXPECT_EQ(ctx.status, 400) << ctx.body;
  EXPECT_EQ(ctx.json()["error"]["code"], "context_length_exceeded");
  json role = chat(4);
  role["messages"][1]["role"] = "robot";
  EXPECT_EQ(post(c, "/v1/chat/completions", role).status, 400);
  json orphan = chat(4);
  orphan["messages"].push_back({{"role", "tool"}, {"tool_call_id", "x"}, {"content", "42"}});
  HttpResult o = post(c, "/v1/chat/completions", orphan);  // rejected by the chat template
  EXPECT_EQ(o.status, 400) << o.body;
  HttpResult big = post(c, "/v1/completions", {{"model", "tiny"}, {"prompt", std::string(70 * 1024, 'a')}});
  EXPECT_EQ(big.status, 413);
}

TEST_F(LiveServer, ClientLeavingCancelsTheGeneration) {
  const int before = cancelled_;
  {
    TestClient c(server_->port());
    json b = {{"model", "tiny"}, {"prompt", "The sea is"}, {"max_tokens", 200}, {"temperature", 0},
              {"ignore_eos", true}, {"stream", true}};
    ASSERT_TRUE(c.send(testing::request_text("POST", "/v1/completions", b.dump(), {kKey})));
    ASSERT_TRUE(c.read_until("\"text\""));  // generating
    c.reset();
  }
  EXPECT_TRUE(ScriptedBackend::eventually([&] { return cancelled_ == before + 1; }));
  EXPECT_LT(cancelled_tokens_.load(), 200);
  EXPECT_TRUE(ScriptedBackend::eventually([] {
    SchedulerStats s = scheduler_->stats();
    return s.running == 0 && s.waiting == 0;
  }));
  TestClient c(server_->port());
  EXPECT_EQ(post(c, "/v1/chat/completions", chat(2)).status, 200);
}

TEST_F(LiveServer, PromptTokenLimit) {
  // A second server over the same text service, refusing prompts of more than 12 tokens.
  HttpServerOptions ho;
  ho.port = 0;
  HttpServer limited(std::shared_ptr<TextBackend>(text_service_backend(*service_, 12)), ho);
  limited.start();
  TestClient c(limited.port());
  const std::string long_prompt = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen";
  ASSERT_GT(tokenizer_->encode(long_prompt, true).size(), 12u);
  HttpResult r = c.request("POST", "/v1/completions",
                           json{{"model", "tiny"}, {"prompt", long_prompt}, {"max_tokens", 2}}.dump());
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.json()["error"]["code"], "context_length_exceeded");
  EXPECT_NE(r.json()["error"]["message"].get<std::string>().find("limit of 12 prompt tokens"), std::string::npos) << r.body;
  // Chat prompts are counted after the template: a short message in a long conversation is refused.
  json chat_body = chat(2);
  EXPECT_EQ(c.request("POST", "/v1/chat/completions", chat_body.dump()).status, 400);
  HttpResult ok = c.request("POST", "/v1/completions", json{{"model", "tiny"}, {"prompt", "Hi"}, {"max_tokens", 2}}.dump());
  EXPECT_EQ(ok.status, 200) << ok.body;
  limited.stop();
}

}  // namespace
}  // namespace shardlm::http
