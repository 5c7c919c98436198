#include "common/json_limits.h"
#include "coordinator/tcp/text_conversion.h"

#include <cmath>

#include "coordinator/sampler.h"
#include "coordinator/tcp/protocol.h"

namespace shardlm::tcp {
namespace {

constexpr int kMaxStopStrings = 16;
constexpr int kMaxTopLogprobs = 20;

nlohmann::json to_json_message(const client::ChatMessage& m, int index) {
  if (m.role().empty()) fail_request(RequestErrorCode::kInvalidRequest, "chat.messages[{}].role is empty", index);
  nlohmann::json j = {{"role", m.role()}};
  if (m.has_content()) j["content"] = m.content();
  if (m.tool_calls_size() > 0) {
    nlohmann::json calls = nlohmann::json::array();
    for (int k = 0; k < m.tool_calls_size(); ++k) {
      const client::ToolCall& c = m.tool_calls(k);
      if (c.name().empty()) {
        fail_request(RequestErrorCode::kInvalidRequest, "chat.messages[{}].tool_calls[{}].name is empty", index, k);
      }
      nlohmann::json call = {{"type", "function"},
                             {"function", {{"name", c.name()}, {"arguments", c.arguments_json()}}}};
      if (!c.id().empty()) call["id"] = c.id();
      calls.push_back(std::move(call));
    }
    j["tool_calls"] = std::move(calls);
  }
  if (!m.tool_call_id().empty()) j["tool_call_id"] = m.tool_call_id();
  if (!m.name().empty()) j["name"] = m.name();
  if (!m.reasoning().empty()) j["reasoning_content"] = m.reasoning();
  return j;
}

}  // namespace

TextRequest to_text_request(const client::GenerateRequest& request) {
  TextRequest r;
  switch (request.input_case()) {
    case client::GenerateRequest::kPrompt:
      r.chat = false;
      r.prompt = request.prompt();
      break;
    case client::GenerateRequest::kChat: {
      const client::ChatInput& chat = request.chat();
      r.chat = true;
      if (chat.messages_size() == 0) fail_request(RequestErrorCode::kInvalidRequest, "chat.messages is empty");
      r.messages = nlohmann::json::array();
      for (int i = 0; i < chat.messages_size(); ++i) r.messages.push_back(to_json_message(chat.messages(i), i));
      if (!chat.tools_json().empty()) {
        try {
          r.tools = parse_json_limited(chat.tools_json());
        } catch (const nlohmann::json::exception& e) {
          fail_request(RequestErrorCode::kInvalidRequest, "chat.tools_json is not valid JSON: {}", e.what());
        }
        if (!r.tools.is_array()) fail_request(RequestErrorCode::kInvalidRequest, "chat.tools_json must be a JSON array");
      }
      r.enable_thinking = chat.enable_thinking();
      r.tool_choice = chat.tool_choice();
      r.tool_choice_function = chat.tool_choice_function();
      r.continue_final_message = chat.continue_final_message();
      r.add_generation_prompt = !chat.continue_final_message();
      break;
    }
    case client::GenerateRequest::INPUT_NOT_SET:
      fail_request(RequestErrorCode::kInvalidRequest, "generate request has neither a prompt nor chat messages");
  }
  if (request.has_max_tokens()) {
    if (request.max_tokens() < 1) {
      fail_request(RequestErrorCode::kInvalidRequest, "max_tokens must be >= 1 (got {})", request.max_tokens());
    }
    r.max_tokens = request.max_tokens();
  }
  const client::Sampling& s = request.sampling();
  if (s.has_temperature()) r.sampling.temperature = s.temperature();
  if (s.has_top_k()) r.sampling.top_k = s.top_k();
  if (s.has_top_p()) r.sampling.top_p = s.top_p();
  if (s.has_min_p()) r.sampling.min_p = s.min_p();
  if (s.has_presence_penalty()) r.sampling.presence_penalty = s.presence_penalty();
  if (s.has_frequency_penalty()) r.sampling.frequency_penalty = s.frequency_penalty();
  if (s.has_repetition_penalty()) r.sampling.repetition_penalty = s.repetition_penalty();
  for (const auto& [token, bias] : s.logit_bias()) r.logit_bias[token] = bias;  // checked by the text service
  if (request.has_min_tokens()) r.min_tokens = request.min_tokens();
  r.include_stop_str_in_output = request.include_stop_str_in_output();
  const int forms = int{request.guided_json_object()} + int{!request.guided_json_schema().empty()} + int{request.guided_choice_size() > 0};
  if (forms > 1) fail_request(RequestErrorCode::kInvalidRequest, "guided decoding: give one of guided_json_object, guided_json_schema, guided_choice");
  if (request.guided_json_object()) r.guided.kind = TextRequest::Guided::Kind::kJsonObject;
  if (!request.guided_json_schema().empty()) {
    r.guided.kind = TextRequest::Guided::Kind::kJsonSchema;
    try {
      r.guided.schema = nlohmann::json::parse(request.guided_json_schema());
    } catch (const nlohmann::json::exception& e) {
      fail_request(RequestErrorCode::kInvalidRequest, "guided_json_schema is not valid JSON: {}", e.what());
    }
  }
  if (request.guided_choice_size() > 0) {
    r.guided.kind = TextRequest::Guided::Kind::kChoice;
    r.guided.choices.assign(request.guided_choice().begin(), request.guided_choice().end());  // checked by the text service
  }
  r.sampling_given = {s.has_temperature(), s.has_top_k(), s.has_top_p(), s.has_min_p(), s.has_repetition_penalty()};
  if (s.has_seed()) r.sampling.seed = s.seed();
  try {
    validate_sampling(r.sampling);
  } catch (const RequestError&) {
    throw;
  } catch (const Error& e) {
    throw RequestError(RequestErrorCode::kInvalidRequest, e.what());
  }
  if (request.stop_size() > kMaxStopStrings) {
    fail_request(RequestErrorCode::kInvalidRequest, "at most {} stop strings are allowed (got {})", kMaxStopStrings,
                 request.stop_size());
  }
  for (int i = 0; i < request.stop_size(); ++i) {
    if (request.stop(i).empty()) fail_request(RequestErrorCode::kInvalidRequest, "stop[{}] is empty", i);
    r.stop.push_back(request.stop(i));
  }
  if (request.has_top_logprobs()) {
    if (request.top_logprobs() < 0 || request.top_logprobs() > kMaxTopLogprobs) {
      fail_request(RequestErrorCode::kInvalidRequest, "top_logprobs must be in [0, {}] (got {})", kMaxTopLogprobs,
                   request.top_logprobs());
    }
    r.top_logprobs = request.top_logprobs();
  }
  r.ignore_eos = request.ignore_eos();
  if (request.has_n()) {
    if (request.n() < 1 || request.n() > kMaxChoices) {
      fail_request(RequestErrorCode::kInvalidRequest, "n must be in [1, {}] (got {})", kMaxChoices, request.n());
    }
    r.n = request.n();
  }
  if (request.has_prompt_logprobs()) {
    if (request.prompt_logprobs() < 0 || request.prompt_logprobs() > kMaxTopLogprobs) {
      fail_request(RequestErrorCode::kInvalidRequest, "prompt_logprobs must be in [0, {}] (got {})", kMaxTopLogprobs,
                   request.prompt_logprobs());
    }
    r.prompt_logprobs = request.prompt_logprobs();
  }
  if (request.echo() && r.chat) fail_request(RequestErrorCode::kInvalidRequest, "echo is for completion prompts, not chat");
  return r;
}

void to_proto_delta(const TextDelta& delta, int& next_tool_call, client::Delta& out) {
  out.set_index(delta.index);
  if (delta.prompt_logprobs) {
    for (const PromptTokenLogprob& p : *delta.prompt_logprobs) {
      client::PromptLogprob* o = out.add_prompt_logprobs();
      o->set_id(p.id);
      o->set_token(p.token);
      if (!std::isnan(p.logprob)) o->set_logprob(p.logprob);
      o->set_rank(p.rank);
      for (const PromptTokenLogprob::Alternative& t : p.top) {
        client::PromptAlternative* a = o->add_top();
        a->set_id(t.id);
        a->set_token(t.token);
        a->set_logprob(t.logprob);
      }
    }
  }
  if (!delta.content.empty()) out.set_content(valid_utf8(delta.content));
  if (!delta.reasoning.empty()) out.set_reasoning(valid_utf8(delta.reasoning));
  for (const ChatToolCall& call : delta.tool_calls) {
    client::ToolCall* c = out.add_tool_calls();
    c->set_id("call_" + std::to_string(next_tool_call++));
    c->set_name(valid_utf8(call.name));
    c->set_arguments_json(call.arguments.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  }
  for (const TextTokenLogprob& lp : delta.logprobs) {
    client::TokenLogprob* p = out.add_logprobs();
    p->set_token(lp.token);
    p->set_logprob(lp.logprob);
    for (const auto& [token, logprob] : lp.top) {
      client::TopLogprob* t = p->add_top();
      t->set_token(token);
      t->set_logprob(logprob);
    }
  }
}

client::FinishReason to_proto_finish_reason(const std::string& reason) {
  if (reason == "length") return client::FINISH_REASON_LENGTH;
  if (reason == "tool_calls") return client::FINISH_REASON_TOOL_CALLS;
  if (reason == "cancelled") return client::FINISH_REASON_CANCELLED;
  return client::FINISH_REASON_STOP;
}

void to_proto_finish(const TextFinish& finish, client::Finish& out) {
  out.set_finish_reason(to_proto_finish_reason(finish.finish_reason));
  out.clear_choice_finish_reasons();
  for (const std::string& reason : finish.choice_reasons) out.add_choice_finish_reasons(to_proto_finish_reason(reason));
  out.mutable_usage()->set_prompt_tokens(finish.prompt_tokens);
  out.mutable_usage()->set_completion_tokens(finish.completion_tokens);
  client::Timings* t = out.mutable_timings();
  t->set_queue_seconds(finish.timings.queue_s);
  t->set_prefill_seconds(finish.timings.prefill_s);
  t->set_ttft_seconds(finish.timings.ttft_s);
  t->set_decode_seconds(finish.timings.decode_s);
  t->set_total_seconds(finish.timings.total_s);
}

client::ErrorCode to_proto_error_code(RequestErrorCode code) {
  switch (code) {
    case RequestErrorCode::kInvalidRequest: return client::ERROR_INVALID_REQUEST;
    case RequestErrorCode::kContextLength: return client::ERROR_CONTEXT_LENGTH;
    case RequestErrorCode::kQueueFull: return client::ERROR_QUEUE_FULL;
    case RequestErrorCode::kUnavailable: return client::ERROR_UNAVAILABLE;
    case RequestErrorCode::kNotFound: return client::ERROR_NOT_FOUND;
    case RequestErrorCode::kInternal: return client::ERROR_INTERNAL;
  }
  return client::ERROR_INTERNAL;
}

}  // namespace shardlm::tcp
