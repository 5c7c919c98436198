#include "coordinator/http/openai_response.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <random>

#include <fmt/format.h>

#include "model/tokenizer_utf8.h"

namespace shardlm::http {
namespace {

using nlohmann::json;

// Log-probabilities below this are written as this value (JSON has no -infinity).
constexpr float kMinLogprob = -9999.0f;

double clamp_logprob(float x) { return x >= kMinLogprob ? x : kMinLogprob; }

json bytes_json(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

// The "token" text of a token's bytes: the bytes when they are whole UTF-8 characters, else
// "bytes:\xe2\x80" (OpenAI's form for a token that is part of a character), so that distinct tokens
// keep distinct texts.
std::string token_text(const std::string& bytes) {
  if (tokenizer_detail::invalid_utf8_at(bytes) == std::string::npos) return bytes;
  std::string text = "bytes:";
  for (unsigned char c : bytes) text += fmt::format("\\x{:02x}", c);
  return text;
}

// Characters a token adds to the text (its bytes that start a UTF-8 character).
int64_t characters_of(const std::string& bytes) {
  int64_t n = 0;
  for (unsigned char c : bytes) n += (c & 0xC0) != 0x80;
  return n;
}

// Where the tokens of a delta stand in the text, in characters: the text a delta brings ends with
// its tokens' own text, so they are placed back from its end (a token whose text the detokenizer
// held back, part of a character or of a stop string's candidate, comes out with a later one), never
// before the delta's start. `chars`: characters before the delta, advanced past it.
void delta_offsets(const TextDelta& d, int64_t& chars, std::vector<int64_t>& out) {
  const int64_t begin = chars;
  chars += characters_of(d.content);
  const size_t first = out.size();
  out.resize(first + d.logprobs.size());
  int64_t pos = chars;
  for (size_t i = d.logprobs.size(); i-- > 0;) {
    pos = std::max(begin, pos - characters_of(d.logprobs[i].token));
    out[first + i] = pos;
  }
}

// Completions: {tokens, token_logprobs, top_logprobs: [{token: logprob}], text_offset}.
json completion_logprobs(const std::vector<TextTokenLogprob>& tokens, const std::vector<int64_t>& offsets) {
  json out = {{"tokens", json::array()}, {"token_logprobs", json::array()}, {"top_logprobs", json::array()},
              {"text_offset", json::array()}};
  for (const TextTokenLogprob& t : tokens) {
    out["tokens"].push_back(token_text(t.token));
    if (std::isnan(t.logprob)) {  // an echoed prompt's first token: nothing before it
      out["token_logprobs"].push_back(nullptr);
      out["top_logprobs"].push_back(nullptr);
      continue;
    }
    out["token_logprobs"].push_back(clamp_logprob(t.logprob));
    json top = json::object();
    for (const auto& [token, lp] : t.top) {
      const std::string text = token_text(token);
      if (!top.contains(text)) top[text] = clamp_logprob(lp);
    }
    // The sampled token is always among them (as in OpenAI's and vLLM's answers: up to logprobs + 1).
    const std::string chosen = token_text(t.token);
    if (!top.contains(chosen)) top[chosen] = clamp_logprob(t.logprob);
    out["top_logprobs"].push_back(std::move(top));
  }
  out["text_offset"] = offsets;
  return out;
}

// An echoed prompt's tokens as completions list the output's: each with `top` best alternatives.
std::vector<TextTokenLogprob> echo_logprobs(const std::vector<PromptTokenLogprob>& prompt, int32_t top) {
  std::vector<TextTokenLogprob> out;
  out.reserve(prompt.size());
  for (const PromptTokenLogprob& p : prompt) {
    TextTokenLogprob t;
    t.token = p.token;
    t.logprob = p.logprob;
    for (size_t k = 0; k < p.top.size() && static_cast<int32_t>(k) < top; ++k) t.top.emplace_back(p.top[k].token, p.top[k].logprob);
    out.push_back(std::move(t));
  }
  return out;
}

std::string final_reason(const std::string& reason, bool had_tool_calls) {
  if (had_tool_calls && reason == "stop") return "tool_calls";
  return reason;
}

}  // namespace

std::string dump_json(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string sse_event(const json& value) { return "data: " + dump_json(value) + "\n\n"; }

std::string new_id(const std::string& prefix) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}() ^
                                   static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count())};
  std::uniform_int_distribution<int> pick(0, static_cast<int>(sizeof(kAlphabet)) - 2);
  std::string id = prefix;
  for (int i = 0; i < 24; ++i) id.push_back(kAlphabet[pick(rng)]);
  return id;
}

int64_t unix_time() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The text of a chat's last message if it is the assistant's: its content, a string or the text of
// its parts ({"type": "text", "text": ...}); else empty.
std::string assistant_text_of_last(const json& messages) {
  if (!messages.is_array() || messages.empty()) return {};
  const json& last = messages.back();
  if (!last.is_object() || last.value("role", json()) != "assistant") return {};
  const auto content = last.find("content");
  if (content == last.end()) return {};
  if (content->is_string()) return content->get<std::string>();
  std::string text;
  if (content->is_array()) {
    for (const json& part : *content) {
      if (part.is_object() && part.value("type", json()) == "text" && part.contains("text") && part["text"].is_string()) {
        text += part["text"].get<std::string>();
      }
    }
  }
  return text;
}

ResponseMeta make_meta(const OpenAIRequest& request) {
  ResponseMeta m;
  m.endpoint = request.endpoint;
  m.id = new_id(request.endpoint == Endpoint::kChat ? "chatcmpl-" : "cmpl-");
  m.created = unix_time();
  m.model = request.model;
  m.logprobs = request.text.top_logprobs >= 0 && !request.logprobs_hidden;
  m.include_usage = request.stream && request.include_usage;
  m.n = request.text.n;
  m.returned = request.best_of_returned;
  m.top_logprobs = request.text.top_logprobs;
  if (request.echo && request.endpoint == Endpoint::kCompletions) {
    m.echo = true;
    m.echo_text = request.text.prompt;
    m.echo_logprobs = m.logprobs;
  } else if (request.echo) {
    // vLLM's chat echo: the last message's text when it is the assistant's (the role answering).
    m.echo_text = assistant_text_of_last(request.text.messages);
    m.echo = !m.echo_text.empty();
  }
  m.prompt_logprobs = request.prompt_logprobs;
  return m;
}

json usage_json(const TextFinish& finish) {
  return {{"prompt_tokens", finish.prompt_tokens},
          {"completion_tokens", finish.completion_tokens},
          {"total_tokens", finish.prompt_tokens + finish.completion_tokens}};
}

json tool_call_json(const ChatToolCall& call) {
  return {{"id", new_id("call_")},
          {"type", "function"},
          {"function", {{"name", call.name}, {"arguments", dump_json(call.arguments)}}}};
}

json prompt_logprobs_json(const std::vector<PromptTokenLogprob>& prompt) {
  json out = json::array();
  for (size_t i = 0; i < prompt.size(); ++i) {
    const PromptTokenLogprob& p = prompt[i];
    if (i == 0 || std::isnan(p.logprob)) {
      out.push_back(nullptr);
      continue;
    }
    json entry = json::object();
    entry[std::to_string(p.id)] = {{"logprob", clamp_logprob(p.logprob)}, {"rank", p.rank}, {"decoded_token", p.token}};
    for (size_t k = 0; k < p.top.size(); ++k) {
      const std::string key = std::to_string(p.top[k].id);
      if (!entry.contains(key)) {
        entry[key] = {{"logprob", clamp_logprob(p.top[k].logprob)}, {"rank", k + 1}, {"decoded_token", p.top[k].token}};
      }
    }
    out.push_back(std::move(entry));
  }
  return out;
}

json chat_logprobs_content(const std::vector<TextTokenLogprob>& tokens) {
  json content = json::array();
  for (const TextTokenLogprob& t : tokens) {
    json top = json::array();
    for (const auto& [token, lp] : t.top) {
      top.push_back({{"token", token_text(token)}, {"logprob", clamp_logprob(lp)}, {"bytes", bytes_json(token)}});
    }
    content.push_back({{"token", token_text(t.token)}, {"logprob", clamp_logprob(t.logprob)}, {"bytes", bytes_json(t.token)},
                       {"top_logprobs", std::move(top)}});
  }
  return content;
}

bool finish_is_error(const TextFinish& finish) {
  return finish.finish_reason == "error" || finish.finish_reason == "cancelled";
}

ApiError finish_error(const TextFinish& finish) {
  if (finish.finish_reason == "cancelled") {
    ApiError e = api_error(RequestErrorCode::kUnavailable, "The request was cancelled by the server");
    e.code = "cancelled";
    return e;
  }
  return api_error(finish.error_code,
                   finish.error.empty() ? std::string("generation failed") : "generation failed: " + finish.error);
}

// ---- non-streamed -------------------------------------------------------------------------------

namespace {

// A choice's finish_reason: its own where the service reported each (n > 1), else the request's.
std::string choice_reason(const TextFinish& finish, size_t index) {
  return index < finish.choice_reasons.size() ? finish.choice_reasons[index] : finish.finish_reason;
}

}  // namespace

CompletionBuilder::CompletionBuilder(ResponseMeta meta)
    : meta_(std::move(meta)), choices_(static_cast<size_t>(std::max(1, meta_.n))) {
  // An echo with log-probabilities comes with the prompt's (add); without, the text is known now.
  if (meta_.echo && !meta_.echo_logprobs) {
    TextDelta echo;
    echo.content = meta_.echo_text;
    for (Choice& c : choices_) add_text(c, echo);
  }
}

void CompletionBuilder::add(const TextDelta& delta) {
  if (delta.index < 0 || static_cast<size_t>(delta.index) >= choices_.size()) return;
  Choice& c = choices_[static_cast<size_t>(delta.index)];
  if (delta.prompt_logprobs) {
    c.prompt = delta.prompt_logprobs;
    if (meta_.echo_logprobs) {
      TextDelta echo;
      echo.content = meta_.echo_text;
      echo.logprobs = echo_logprobs(*c.prompt, meta_.top_logprobs);
      add_text(c, echo);
    }
  }
  for (const TextTokenLogprob& t : delta.logprobs) c.logprob_sum += t.logprob;
  c.tokens += static_cast<int64_t>(delta.logprobs.size());
  add_text(c, delta);
}

void CompletionBuilder::add_text(Choice& c, const TextDelta& delta) {
  c.content += delta.content;
  c.reasoning += delta.reasoning;
  c.tool_calls.insert(c.tool_calls.end(), delta.tool_calls.begin(), delta.tool_calls.end());
  c.logprobs.insert(c.logprobs.end(), delta.logprobs.begin(), delta.logprobs.end());
  if (meta_.endpoint == Endpoint::kCompletions) delta_offsets(delta, c.text_chars, c.text_offsets);
}

json CompletionBuilder::choice_json(size_t source, size_t index, const TextFinish& finish) const {
  const Choice& c = choices_[source];
  json choice;
  choice["index"] = index;
  if (meta_.endpoint == Endpoint::kChat) {
    json message = {{"role", "assistant"}};
    const bool tools = !c.tool_calls.empty();
    message["content"] = tools && c.content.empty() ? json(nullptr) : json(c.content);
    message["refusal"] = nullptr;
    if (!c.reasoning.empty()) message["reasoning_content"] = c.reasoning;
    if (tools) {
      json calls = json::array();
      for (const ChatToolCall& call : c.tool_calls) calls.push_back(tool_call_json(call));
      message["tool_calls"] = std::move(calls);
    }
    choice["message"] = std::move(message);
    choice["logprobs"] = meta_.logprobs ? json{{"content", chat_logprobs_content(c.logprobs)}, {"refusal", nullptr}} : json(nullptr);
    choice["finish_reason"] = final_reason(choice_reason(finish, source), tools);
  } else {
    choice["text"] = c.content;
    choice["logprobs"] = meta_.logprobs ? completion_logprobs(c.logprobs, c.text_offsets) : json(nullptr);
    choice["finish_reason"] = final_reason(choice_reason(finish, source), false);
    if (meta_.prompt_logprobs) choice["prompt_logprobs"] = c.prompt ? prompt_logprobs_json(*c.prompt) : json(nullptr);
  }
  return choice;
}

json CompletionBuilder::finish(const TextFinish& finish) const {
  // best_of: the choices with the highest mean log-probability per generated token first (a choice
  // without tokens last; ties in index order), as many as are returned.
  std::vector<size_t> order(choices_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  const size_t returned = meta_.returned > 0 ? std::min(order.size(), static_cast<size_t>(meta_.returned)) : order.size();
  if (returned < order.size()) {
    const auto score = [&](size_t i) {
      const Choice& c = choices_[i];
      return c.tokens > 0 ? c.logprob_sum / static_cast<double>(c.tokens) : -std::numeric_limits<double>::infinity();
    };
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return score(a) > score(b); });
  }
  json choices = json::array();
  for (size_t k = 0; k < returned; ++k) choices.push_back(choice_json(order[k], k, finish));
  json response = {{"id", meta_.id},
                   {"object", meta_.endpoint == Endpoint::kChat ? "chat.completion" : "text_completion"},
                   {"created", meta_.created},
                   {"model", meta_.model},
                   {"choices", std::move(choices)},
                   {"usage", usage_json(finish)}};
  // vLLM's chat response holds the prompt's log-probabilities once, beside the choices.
  if (meta_.endpoint == Endpoint::kChat && meta_.prompt_logprobs) {
    const Choice& first = choices_.front();
    response["prompt_logprobs"] = first.prompt ? prompt_logprobs_json(*first.prompt) : json(nullptr);
  }
  return response;
}

// ---- streamed -----------------------------------------------------------------------------------

ChunkStream::ChunkStream(ResponseMeta meta) : meta_(std::move(meta)), choices_(static_cast<size_t>(std::max(1, meta_.n))) {}

json ChunkStream::chunk(json choice) const {
  json c = {{"id", meta_.id},
            {"object", meta_.endpoint == Endpoint::kChat ? "chat.completion.chunk" : "text_completion"},
            {"created", meta_.created},
            {"model", meta_.model},
            {"choices", json::array({std::move(choice)})}};
  if (meta_.include_usage) c["usage"] = nullptr;
  return c;
}

ChunkStream::Choice* ChunkStream::choice_at(int32_t index) {
  if (index < 0 || static_cast<size_t>(index) >= choices_.size()) return nullptr;
  return &choices_[static_cast<size_t>(index)];
}

std::string ChunkStream::start() {
  std::string out;
  if (meta_.endpoint == Endpoint::kChat) {
    for (size_t i = 0; i < choices_.size(); ++i) {
      out += sse_event(chunk({{"index", i},
                              {"delta", {{"role", "assistant"}, {"content", ""}}},
                              {"logprobs", nullptr},
                              {"finish_reason", nullptr}}));
    }
  }
  // An echo without log-probabilities is known now (with them it comes with the prompt's).
  if (meta_.echo && !meta_.echo_logprobs) {
    TextDelta echo;
    echo.content = meta_.echo_text;
    for (size_t i = 0; i < choices_.size(); ++i) {
      echo.index = static_cast<int32_t>(i);
      out += delta(echo);
    }
  }
  return out;
}

std::string ChunkStream::delta(const TextDelta& d) {
  Choice* c = choice_at(d.index);
  if (d.empty() || c == nullptr || c->ended) return {};
  if (!d.prompt_logprobs) return sse_event(chunk(text_choice(d, *c)));
  // The prompt's log-probabilities: an echo with them (completions), vLLM's prompt_logprobs (chat:
  // once, beside the choices, as in the response that is not streamed).
  std::string out;
  if (meta_.endpoint == Endpoint::kChat) {
    if (meta_.prompt_logprobs && d.index == 0) {
      TextDelta none;
      json c0 = chunk(text_choice(none, *c));
      c0["prompt_logprobs"] = prompt_logprobs_json(*d.prompt_logprobs);
      out = sse_event(c0);
    }
  } else {
    TextDelta echo;
    echo.index = d.index;
    if (meta_.echo_logprobs) {
      echo.content = meta_.echo_text;
      echo.logprobs = echo_logprobs(*d.prompt_logprobs, meta_.top_logprobs);
    }
    json choice = text_choice(echo, *c);
    if (meta_.prompt_logprobs) choice["prompt_logprobs"] = prompt_logprobs_json(*d.prompt_logprobs);
    out = sse_event(chunk(std::move(choice)));
  }
  TextDelta rest = d;
  rest.prompt_logprobs.reset();
  if (!rest.empty()) out += delta(rest);
  return out;
}

json ChunkStream::text_choice(const TextDelta& d, Choice& ch) {
  Choice* c = &ch;
  json choice = {{"index", d.index}};
  if (meta_.endpoint == Endpoint::kChat) {
    json delta = json::object();
    if (!d.content.empty()) delta["content"] = d.content;
    if (!d.reasoning.empty()) delta["reasoning_content"] = d.reasoning;
    if (!d.tool_calls.empty()) {
      json calls = json::array();
      for (const ChatToolCall& tc : d.tool_calls) {
        json call = tool_call_json(tc);
        call["index"] = c->tool_calls++;
        calls.push_back(std::move(call));
      }
      delta["tool_calls"] = std::move(calls);
    }
    choice["delta"] = std::move(delta);
    choice["logprobs"] = meta_.logprobs && !d.logprobs.empty() ? json{{"content", chat_logprobs_content(d.logprobs)}, {"refusal", nullptr}}
                                                               : json(nullptr);
  } else {
    choice["text"] = d.content;
    std::vector<int64_t> offsets;
    delta_offsets(d, c->text_chars, offsets);
    choice["logprobs"] = meta_.logprobs && !d.logprobs.empty() ? completion_logprobs(d.logprobs, offsets) : json(nullptr);
  }
  choice["finish_reason"] = nullptr;
  return choice;
}

std::string ChunkStream::final_chunk(size_t index, const std::string& reason) {
  Choice& c = choices_[index];
  if (c.ended) return {};
  c.ended = true;
  json choice = {{"index", index}};
  if (meta_.endpoint == Endpoint::kChat) {
    choice["delta"] = json::object();
  } else {
    choice["text"] = "";
  }
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = final_reason(reason, c.tool_calls > 0);
  return sse_event(chunk(std::move(choice)));
}

std::string ChunkStream::choice_finish(int32_t index, const TextFinish& finish) {
  if (choice_at(index) == nullptr || finish_is_error(finish)) return {};
  return final_chunk(static_cast<size_t>(index), finish.finish_reason);
}

std::string ChunkStream::finish(const TextFinish& finish) {
  if (finish_is_error(finish)) return sse_event(finish_error(finish).to_json());
  std::string out;
  for (size_t i = 0; i < choices_.size(); ++i) out += final_chunk(i, choice_reason(finish, i));
  if (meta_.include_usage) {
    json usage = chunk(nullptr);
    usage["choices"] = json::array();
    usage["usage"] = usage_json(finish);
    out += sse_event(usage);
  }
  out += kSseDone;
  return out;
}

// ---- models -------------------------------------------------------------------------------------

json model_json(const std::string& model, int64_t created, int64_t max_context) {
  return {{"id", model}, {"object", "model"}, {"created", created}, {"owned_by", "shardlm"}, {"max_model_len", max_context}};
}

json models_json(const std::string& model, int64_t created, int64_t max_context) {
  return {{"object", "list"}, {"data", json::array({model_json(model, created, max_context)})}};
}

}  // namespace shardlm::http
