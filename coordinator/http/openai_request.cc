#include "common/json_limits.h"
#include "coordinator/http/openai_request.h"

#include <charconv>
#include <cmath>
#include <limits>
#include <map>

#include "coordinator/http/api_error.h"
#include "coordinator/sampler.h"

namespace shardlm::http {
namespace {

using nlohmann::json;

constexpr size_t kMaxStop = 16;
constexpr int kMaxChatTopLogprobs = 20;
constexpr int kMaxCompletionLogprobs = 5;
constexpr int kMaxPromptLogprobs = 20;
constexpr size_t kMaxGuidedChoices = 1024;

std::string kind(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float: return "a number";
    default: return "an unsupported value";
  }
}

// The field's value, or nullptr when it is absent or null.
const json* field(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

bool get_bool(const json& v, const std::string& name) {
  if (!v.is_boolean()) fail_param(name, "Invalid type for '{}': expected a boolean, but got {}", name, kind(v));
  return v.get<bool>();
}

double get_number(const json& v, const std::string& name) {
  if (!v.is_number()) fail_param(name, "Invalid type for '{}': expected a number, but got {}", name, kind(v));
  double x = v.get<double>();
  if (!std::isfinite(x)) fail_param(name, "'{}' must be a finite number", name);
  return x;
}

int64_t get_int(const json& v, const std::string& name, int64_t lo, int64_t hi) {
  int64_t x = 0;
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    if (hi < 0 || u > static_cast<uint64_t>(hi)) fail_param(name, "'{}' must be at most {} (got {})", name, hi, u);
    x = static_cast<int64_t>(u);
  } else if (v.is_number_integer()) {
    x = v.get<int64_t>();
  } else if (v.is_number_float()) {
    double d = v.get<double>();
    if (!std::isfinite(d) || d != std::floor(d)) {
      fail_param(name, "Invalid type for '{}': expected an integer, but got {}", name, d);
    }
    if (d < -9.2e18 || d > 9.2e18) fail_param(name, "'{}' is out of range: {} is not a 64-bit integer", name, d);
    x = static_cast<int64_t>(d);
  } else {
    fail_param(name, "Invalid type for '{}': expected an integer, but got {}", name, kind(v));
  }
  if (x < lo) fail_param(name, "'{}' must be at least {} (got {})", name, lo, x);
  if (x > hi) fail_param(name, "'{}' must be at most {} (got {})", name, hi, x);
  return x;
}

std::string get_string(const json& v, const std::string& name) {
  if (!v.is_string()) fail_param(name, "Invalid type for '{}': expected a string, but got {}", name, kind(v));
  return v.get<std::string>();
}

// seed: any integer of 64 bits, signed or unsigned (a negative seed is taken modulo 2^64).
uint64_t get_seed(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) return static_cast<uint64_t>(v.get<int64_t>());
  return static_cast<uint64_t>(get_int(v, "seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()));
}

void parse_stop(const json& body, TextRequest& text) {
  const json* stop = field(body, "stop");
  if (!stop) return;
  if (stop->is_string()) {
    std::string s = stop->get<std::string>();
    if (s.empty()) fail_param("stop", "'stop' must not be an empty string");
    text.stop.push_back(std::move(s));
    return;
  }
  if (!stop->is_array()) fail_param("stop", "Invalid type for 'stop': expected a string or an array of strings, but got {}", kind(*stop));
  if (stop->size() > kMaxStop) fail_param("stop", "'stop' holds {} strings; at most {} are allowed", stop->size(), kMaxStop);
  for (size_t i = 0; i < stop->size(); ++i) {
    const std::string name = fmt::format("stop[{}]", i);
    std::string s = get_string((*stop)[i], name);
    if (s.empty()) fail_param(name, "'{}' must not be an empty string", name);
    text.stop.push_back(std::move(s));
  }
}

// A logit_bias key read as Python's int() reads it (vLLM's): blanks around it, a sign, decimal digits;
// the value must be a token id (>= 0).
int32_t logit_bias_token(const std::string& key) {
  size_t b = 0, e = key.size();
  const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
  while (b < e && blank(key[b])) ++b;
  while (e > b && blank(key[e - 1])) --e;
  bool negative = false;
  if (b < e && (key[b] == '+' || key[b] == '-')) negative = key[b++] == '-';
  int64_t id = -1;
  const auto [end, ec] = std::from_chars(key.data() + b, key.data() + e, id);
  if (b == e || ec != std::errc() || end != key.data() + e || (negative && id != 0) || id > std::numeric_limits<int32_t>::max()) {
    fail_param("logit_bias", "'logit_bias' keys must be token ids (got \"{}\")", key);
  }
  return static_cast<int32_t>(id);
}

// guided_choice: 1..kMaxGuidedChoices strings, none empty.
std::vector<std::string> get_choices(const json& v, const std::string& name) {
  if (!v.is_array()) fail_param(name, "Invalid type for '{}': expected an array of strings, but got {}", name, kind(v));
  if (v.empty() || v.size() > kMaxGuidedChoices) {
    fail_param(name, "'{}' must hold 1 to {} choices (got {})", name, kMaxGuidedChoices, v.size());
  }
  std::vector<std::string> out;
  for (const json& c : v) {
    if (!c.is_string() || c.get<std::string>().empty()) fail_param(name, "'{}' must hold non-empty strings", name);
    out.push_back(c.get<std::string>());
  }
  return out;
}

// A JSON Schema given as an object (or a boolean), or as its JSON text (vLLM takes both).
json get_schema(const json& v, const std::string& name) {
  json schema = v;
  if (v.is_string()) {
    try {
      schema = parse_json_limited(v.get<std::string>());
    } catch (const json::exception& e) {
      fail_param(name, "'{}' is not valid JSON: {}", name, e.what());
    }
  }
  if (!schema.is_object() && !schema.is_boolean()) fail_param(name, "'{}' must be a JSON Schema (an object)", name);
  return schema;
}

// vLLM's guided decoding fields: guided_choice and structured_outputs {choice | json_object}; the
// forms this server does not implement (a JSON schema, a regex, a grammar) are refused by name. At
// most one form per request (response_format json_object included: parse_response_format).
void parse_guided(const json& body, TextRequest& text) {
  using Kind = TextRequest::Guided::Kind;
  auto set = [&](const char* name, Kind kind, std::vector<std::string> choices = {}) {
    if (text.guided.kind != Kind::kNone) fail_param(name, "'{}': only one form of guided decoding may be given", name);
    text.guided.kind = kind;
    text.guided.choices = std::move(choices);
  };
  for (const char* key : {"guided_regex", "guided_grammar"}) {
    if (field(body, key) != nullptr) {
      fail_param(key, "'{}' is not supported (guided decoding takes guided_choice, guided_json and JSON objects)", key);
    }
  }
  if (const json* v = field(body, "guided_choice")) set("guided_choice", Kind::kChoice, get_choices(*v, "guided_choice"));
  if (const json* v = field(body, "guided_json")) {
    set("guided_json", Kind::kJsonSchema);
    text.guided.schema = get_schema(*v, "guided_json");
  }
  if (const json* so = field(body, "structured_outputs")) {
    if (!so->is_object()) fail_param("structured_outputs", "Invalid type for 'structured_outputs': expected an object, but got {}", kind(*so));
    for (const auto& [key, value] : so->items()) {
      if (value.is_null()) continue;
      if (key == "choice") {
        set("structured_outputs", Kind::kChoice, get_choices(value, "structured_outputs.choice"));
      } else if (key == "json_object") {
        if (get_bool(value, "structured_outputs.json_object")) set("structured_outputs", Kind::kJsonObject);
      } else if (key == "json") {
        set("structured_outputs", Kind::kJsonSchema);
        text.guided.schema = get_schema(value, "structured_outputs.json");
      } else if (key == "regex" || key == "grammar" || key == "structural_tag") {
        fail_param("structured_outputs", "'structured_outputs.{}' is not supported (choice, json and json_object are)", key);
      } else if (key != "disable_fallback" && key != "disable_any_whitespace" && key != "disable_additional_properties" &&
                 key != "whitespace_pattern") {
        fail_param("structured_outputs", "'structured_outputs' has an unknown field '{}'", key);
      }
    }
  }
}

// Fields both endpoints share.
void parse_common(const json& body, OpenAIRequest& r) {
  const json* model = field(body, "model");
  if (!model) fail_param("model", "'model' is required");
  r.model = get_string(*model, "model");
  if (r.model.empty()) fail_param("model", "'model' must not be empty");

  if (const json* v = field(body, "stream")) r.stream = get_bool(*v, "stream");
  if (const json* v = field(body, "stream_options")) {
    if (!v->is_object()) fail_param("stream_options", "Invalid type for 'stream_options': expected an object, but got {}", kind(*v));
    if (const json* u = field(*v, "include_usage")) r.include_usage = get_bool(*u, "stream_options.include_usage");
  }
  if (!r.stream) {
    if (field(body, "stream_options")) fail_param("stream_options", "'stream_options' is only allowed when 'stream' is true");
    r.include_usage = false;
  }

  TextRequest& text = r.text;
  // max_completion_tokens is the newer name of max_tokens; it wins when both are given.
  if (const json* v = field(body, "max_completion_tokens")) {
    text.max_tokens = static_cast<int32_t>(get_int(*v, "max_completion_tokens", 1, std::numeric_limits<int32_t>::max()));
  } else if (const json* v = field(body, "max_tokens")) {
    text.max_tokens = static_cast<int32_t>(get_int(*v, "max_tokens", 1, std::numeric_limits<int32_t>::max()));
  }

  SamplingParams& s = text.sampling;
  if (const json* v = field(body, "temperature")) {
    double t = get_number(*v, "temperature");
    if (t < 0) fail_param("temperature", "'temperature' must be >= 0 (got {})", t);
    if (t > std::numeric_limits<float>::max()) fail_param("temperature", "'temperature' {} is too large (at most 3.4e38)", t);
    s.temperature = static_cast<float>(t);
    text.sampling_given.temperature = true;
  }
  if (const json* v = field(body, "top_p")) {
    double p = get_number(*v, "top_p");
    if (!(p > 0 && p <= 1)) fail_param("top_p", "'top_p' must be in (0, 1] (got {})", p);
    s.top_p = static_cast<float>(p);
    if (!(s.top_p > 0)) fail_param("top_p", "'top_p' {} is too small: it rounds to 0 in single precision", p);
    text.sampling_given.top_p = true;
  }
  if (const json* v = field(body, "top_k")) {
    int64_t k = get_int(*v, "top_k", -1, 65536);
    s.top_k = static_cast<int32_t>(k < 0 ? 0 : k);  // -1 (vLLM) and 0 both mean off
    text.sampling_given.top_k = true;
  }
  if (const json* v = field(body, "min_p")) {
    double p = get_number(*v, "min_p");
    if (!(p >= 0 && p <= 1)) fail_param("min_p", "'min_p' must be in [0, 1] (got {})", p);
    s.min_p = static_cast<float>(p);
    text.sampling_given.min_p = true;
  }
  if (const json* v = field(body, "seed")) {
    s.seed = get_seed(*v);
    r.seed_given = true;
  }
  for (auto [key, value] : {std::pair{"presence_penalty", &s.presence_penalty}, std::pair{"frequency_penalty", &s.frequency_penalty}}) {
    if (const json* v = field(body, key)) {
      const double x = get_number(*v, key);
      if (!(x >= -2.0 && x <= 2.0)) fail_param(key, "'{}' must be in [-2, 2] (got {})", key, x);
      *value = static_cast<float>(x);
    }
  }
  if (const json* v = field(body, "repetition_penalty")) {  // vLLM's
    const double x = get_number(*v, "repetition_penalty");
    s.repetition_penalty = static_cast<float>(x);
    if (!(x > 0.0) || !(s.repetition_penalty > 0.0f) || x > std::numeric_limits<float>::max()) {
      fail_param("repetition_penalty", "'repetition_penalty' must be > 0 and a single-precision number (got {})", x);
    }
    text.sampling_given.repetition_penalty = true;
  }
  try {
    validate_sampling(s);
  } catch (const Error& e) {
    fail_param("", "{}", e.what());
  }

  parse_stop(body, text);

  if (const json* v = field(body, "n")) {
    text.n = static_cast<int32_t>(get_int(*v, "n", 1, kMaxChoices));
  }
  if (const json* v = field(body, "ignore_eos")) text.ignore_eos = get_bool(*v, "ignore_eos");

  if (const json* v = field(body, "stop_token_ids")) {
    if (!v->is_array()) fail_param("stop_token_ids", "Invalid type for 'stop_token_ids': expected an array, but got {}", kind(*v));
    if (v->size() > 64) fail_param("stop_token_ids", "'stop_token_ids' holds at most 64 ids (got {})", v->size());
    for (size_t i = 0; i < v->size(); ++i) {
      const std::string name = fmt::format("stop_token_ids[{}]", i);
      text.stop_token_ids.push_back(static_cast<int32_t>(get_int((*v)[i], name.c_str(), 0, std::numeric_limits<int32_t>::max())));
    }
  }

  if (const json* v = field(body, "min_tokens")) {  // vLLM's; at most max_tokens (the text service's check)
    text.min_tokens = static_cast<int32_t>(get_int(*v, "min_tokens", 0, std::numeric_limits<int32_t>::max()));
  }
  if (const json* v = field(body, "include_stop_str_in_output")) {  // vLLM's
    text.include_stop_str_in_output = get_bool(*v, "include_stop_str_in_output");
  }
  if (const json* v = field(body, "prompt_logprobs")) {  // vLLM's (its -1, the whole vocabulary, is not taken)
    text.prompt_logprobs = static_cast<int32_t>(get_int(*v, "prompt_logprobs", 0, kMaxPromptLogprobs));
    r.prompt_logprobs = true;
  }
  // vLLM's sampling extensions this server does not implement: refused rather than ignored.
  parse_guided(body, text);
  if (const json* v = field(body, "logit_bias")) {
    if (!v->is_object()) fail_param("logit_bias", "Invalid type for 'logit_bias': expected an object, but got {}", kind(*v));
    if (v->size() > kMaxLogitBias) fail_param("logit_bias", "'logit_bias' holds {} tokens; at most {} are allowed", v->size(), kMaxLogitBias);
    std::map<int32_t, std::string> keys;  // token id -> the key that named it
    for (const auto& [key, value] : v->items()) {
      const int32_t id = logit_bias_token(key);
      if (auto [it, added] = keys.emplace(id, key); !added) {
        fail_param("logit_bias", "'logit_bias' names token {} twice (\"{}\" and \"{}\")", id, it->second, key);
      }
      const std::string name = fmt::format("logit_bias[{}]", key);
      const double bias = get_number(value, name);
      if (!(bias >= -100.0 && bias <= 100.0)) fail_param("logit_bias", "'{}' must be in [-100, 100] (got {})", name, bias);
      text.logit_bias[id] = static_cast<float>(bias);
    }
  }
}

// vLLM's chat template switches: add_generation_prompt (default true) and continue_final_message.
void parse_template_flags(const json& body, TextRequest& text) {
  if (const json* v = field(body, "add_generation_prompt")) text.add_generation_prompt = get_bool(*v, "add_generation_prompt");
  if (const json* v = field(body, "continue_final_message")) text.continue_final_message = get_bool(*v, "continue_final_message");
  if (text.continue_final_message && text.add_generation_prompt) {
    fail_param("continue_final_message",
               "'continue_final_message' continues the last message, so 'add_generation_prompt' must be false (it opens a new turn)");
  }
}

// continue_final_message continues the assistant's last message: refused, naming the field, when the
// last message is another role's or a tool_choice forces the turn to begin with a call.
void check_continuation(const TextRequest& text) {
  if (!text.continue_final_message) return;
  const json& last = text.messages.back();
  const json* role = field(last, "role");
  if (role == nullptr || !role->is_string() || role->get<std::string>() != "assistant") {
    fail_param("continue_final_message", "'continue_final_message' continues the last message, which must be the assistant's");
  }
  if (text.tool_choice == "required" || !text.tool_choice_function.empty()) {
    fail_param("continue_final_message", "'continue_final_message' cannot be combined with a tool_choice that forces a call");
  }
}

void check_content(const json& message, const std::string& where, const std::string& role) {
  const json* content = field(message, "content");
  if (!content || content->is_string()) return;
  if (content->is_object() && role == "tool") return;  // a structured tool result
  const std::string name = where + ".content";
  if (!content->is_array()) {
    fail_param(name, "Invalid type for '{}': expected a string or an array of content parts, but got {}", name, kind(*content));
  }
  for (size_t j = 0; j < content->size(); ++j) {
    const json& part = (*content)[j];
    const std::string pw = fmt::format("{}[{}]", name, j);
    if (!part.is_object()) fail_param(pw, "Invalid type for '{}': expected an object, but got {}", pw, kind(part));
    const json* type = field(part, "type");
    if (!type) fail_param(pw + ".type", "'{}.type' is required", pw);
    std::string t = get_string(*type, pw + ".type");
    if (t != "text") fail_param(pw + ".type", "'{}.type' is '{}': only text content parts are supported", pw, t);
    const json* text = field(part, "text");
    if (!text) fail_param(pw + ".text", "'{}.text' is required", pw);
    get_string(*text, pw + ".text");
  }
}

void check_messages(const json& body) {
  const json* messages = field(body, "messages");
  if (!messages) fail_param("messages", "'messages' is required");
  if (!messages->is_array()) {
    fail_param("messages", "Invalid type for 'messages': expected an array of messages, but got {}", kind(*messages));
  }
  if (messages->empty()) fail_param("messages", "'messages' must hold at least one message");
  for (size_t i = 0; i < messages->size(); ++i) {
    const json& m = (*messages)[i];
    const std::string where = fmt::format("messages[{}]", i);
    if (!m.is_object()) fail_param(where, "Invalid type for '{}': expected an object, but got {}", where, kind(m));
    const json* role = field(m, "role");
    if (!role) fail_param(where + ".role", "'{}.role' is required", where);
    std::string r = get_string(*role, where + ".role");
    if (r != "system" && r != "developer" && r != "user" && r != "assistant" && r != "tool") {
      fail_param(where + ".role", "'{}.role' must be one of system, developer, user, assistant, tool (got '{}')", where, r);
    }
    check_content(m, where, r);
  }
}

// Validated tool declarations (an array), or null when there are none.
json parse_tools(const json& body) {
  const json* tools = field(body, "tools");
  if (!tools) return nullptr;
  if (!tools->is_array()) fail_param("tools", "Invalid type for 'tools': expected an array, but got {}", kind(*tools));
  for (size_t i = 0; i < tools->size(); ++i) {
    const json& t = (*tools)[i];
    const std::string where = fmt::format("tools[{}]", i);
    if (!t.is_object()) fail_param(where, "Invalid type for '{}': expected an object, but got {}", where, kind(t));
    const json* type = field(t, "type");
    if (!type) fail_param(where + ".type", "'{}.type' is required", where);
    if (get_string(*type, where + ".type") != "function") {
      fail_param(where + ".type", "'{}.type' must be 'function' (got '{}')", where, type->get<std::string>());
    }
    const json* fn = field(t, "function");
    if (!fn) fail_param(where + ".function", "'{}.function' is required", where);
    if (!fn->is_object()) fail_param(where + ".function", "Invalid type for '{}.function': expected an object, but got {}", where, kind(*fn));
    const json* name = field(*fn, "name");
    if (!name) fail_param(where + ".function.name", "'{}.function.name' is required", where);
    if (get_string(*name, where + ".function.name").empty()) {
      fail_param(where + ".function.name", "'{}.function.name' must not be empty", where);
    }
    if (const json* p = field(*fn, "parameters"); p && !p->is_object()) {
      fail_param(where + ".function.parameters", "Invalid type for '{}.function.parameters': expected an object, but got {}", where, kind(*p));
    }
  }
  return tools->empty() ? json(nullptr) : *tools;
}

// Applies tool_choice to the declarations (see the header).
json apply_tool_choice(const json& body, json tools, TextRequest& text) {
  const json* choice = field(body, "tool_choice");
  if (!choice) return tools;
  if (choice->is_string()) {
    std::string c = choice->get<std::string>();
    if (c == "none") return nullptr;
    if (c == "auto") return tools;
    if (c == "required") {
      if (tools.is_null()) fail_param("tool_choice", "'tool_choice' is 'required' but no tools were given");
      text.tool_choice = c;
      return tools;
    }
    fail_param("tool_choice", "'tool_choice' must be 'none', 'auto', 'required' or a named function (got '{}')", c);
  }
  if (!choice->is_object()) {
    fail_param("tool_choice", "Invalid type for 'tool_choice': expected a string or an object, but got {}", kind(*choice));
  }
  const json* type = field(*choice, "type");
  if (!type || !type->is_string() || type->get<std::string>() != "function") {
    fail_param("tool_choice.type", "'tool_choice.type' must be 'function'");
  }
  const json* fn = field(*choice, "function");
  const json* name = fn && fn->is_object() ? field(*fn, "name") : nullptr;
  if (!name) fail_param("tool_choice.function.name", "'tool_choice.function.name' is required");
  std::string wanted = get_string(*name, "tool_choice.function.name");
  if (!tools.is_null()) {
    for (const json& t : tools) {
      if (t["function"]["name"] == wanted) {
        text.tool_choice_function = wanted;
        return json::array({t});
      }
    }
  }
  fail_param("tool_choice.function.name", "'tool_choice' names the function '{}', which is not among the tools", wanted);
}

bool parse_thinking(const json& body) {
  if (const json* kwargs = field(body, "chat_template_kwargs")) {
    if (!kwargs->is_object()) {
      fail_param("chat_template_kwargs", "Invalid type for 'chat_template_kwargs': expected an object, but got {}", kind(*kwargs));
    }
    if (const json* v = field(*kwargs, "enable_thinking")) return get_bool(*v, "chat_template_kwargs.enable_thinking");
  }
  if (const json* v = field(body, "reasoning_effort")) return get_string(*v, "reasoning_effort") != "none";
  return false;
}

// response_format: text, or json_object (guided decoding: any JSON object).
void parse_response_format(const json& body, TextRequest& text) {
  const json* rf = field(body, "response_format");
  if (!rf) return;
  if (!rf->is_object()) fail_param("response_format", "Invalid type for 'response_format': expected an object, but got {}", kind(*rf));
  const json* type = field(*rf, "type");
  std::string t = type ? get_string(*type, "response_format.type") : "";
  if (t == "text") return;
  if (t != "json_object" && t != "json_schema") {
    fail_param("response_format", "'response_format' of type '{}' is not supported ('text', 'json_object' and 'json_schema' are)", t);
  }
  if (text.guided.kind != TextRequest::Guided::Kind::kNone) {
    fail_param("response_format", "'response_format': only one form of guided decoding may be given");
  }
  if (t == "json_object") {
    text.guided.kind = TextRequest::Guided::Kind::kJsonObject;
    return;
  }
  // {"type": "json_schema", "json_schema": {"name", "schema", "strict", "description"}}
  const json* js = field(*rf, "json_schema");
  if (!js || !js->is_object()) fail_param("response_format", "'response_format.json_schema' must be an object holding 'schema'");
  const json* schema = field(*js, "schema");
  if (!schema) fail_param("response_format", "'response_format.json_schema.schema' is required");
  text.guided.kind = TextRequest::Guided::Kind::kJsonSchema;
  text.guided.schema = get_schema(*schema, "response_format.json_schema.schema");
}

}  // namespace

json parse_json_body(std::string_view body) {
  json j;
  try {
    j = parse_json_limited(body);
  } catch (const json::exception& e) {
    // Drop the library's "[json.exception.parse_error.101] " prefix.
    std::string_view what = e.what();
    if (!what.empty() && what.front() == '[' && what.find("] ") != std::string_view::npos) what.remove_prefix(what.find("] ") + 2);
    fail_param("", "The request body is not valid JSON: {}", what);
  }
  if (!j.is_object()) fail_param("", "The request body must be a JSON object, not {}", kind(j));
  return j;
}

OpenAIRequest parse_chat_request(const json& body) {
  OpenAIRequest r;
  r.endpoint = Endpoint::kChat;
  r.text.chat = true;
  parse_common(body, r);
  check_messages(body);
  r.text.messages = body["messages"];
  parse_template_flags(body, r.text);
  r.text.tools = apply_tool_choice(body, parse_tools(body), r.text);
  check_continuation(r.text);
  r.text.enable_thinking = parse_thinking(body);
  parse_response_format(body, r.text);
  if (const json* v = field(body, "echo")) r.echo = get_bool(*v, "echo");  // vLLM's: the last message first

  bool logprobs = false;
  if (const json* v = field(body, "logprobs")) logprobs = get_bool(*v, "logprobs");
  if (const json* v = field(body, "top_logprobs")) {
    int64_t n = get_int(*v, "top_logprobs", 0, kMaxChatTopLogprobs);
    if (!logprobs) fail_param("top_logprobs", "'top_logprobs' needs 'logprobs' to be true");
    r.text.top_logprobs = static_cast<int32_t>(n);
  } else if (logprobs) {
    r.text.top_logprobs = 0;
  }
  return r;
}

OpenAIRequest parse_completion_request(const json& body) {
  OpenAIRequest r;
  r.endpoint = Endpoint::kCompletions;
  r.text.chat = false;
  parse_common(body, r);

  const json* prompt = field(body, "prompt");
  if (!prompt) fail_param("prompt", "'prompt' is required");
  if (prompt->is_string()) {
    r.text.prompt = prompt->get<std::string>();
  } else if (prompt->is_array()) {
    if (prompt->size() != 1 || !(*prompt)[0].is_string()) {
      fail_param("prompt", "'prompt' must be a string or an array of exactly one string (batches and token ids are not supported)");
    }
    r.text.prompt = (*prompt)[0].get<std::string>();
  } else {
    fail_param("prompt", "Invalid type for 'prompt': expected a string, but got {}", kind(*prompt));
  }
  parse_response_format(body, r.text);  // vLLM's completions take it too

  if (const json* v = field(body, "logprobs")) {
    r.text.top_logprobs = static_cast<int32_t>(get_int(*v, "logprobs", 0, kMaxCompletionLogprobs));
  }
  if (const json* v = field(body, "echo"); v && get_bool(*v, "echo")) {
    r.echo = true;
    // The prompt's tokens are listed with their log-probabilities as the output's are.
    if (r.text.top_logprobs >= 0) r.text.prompt_logprobs = std::max(r.text.prompt_logprobs, r.text.top_logprobs);
  }
  if (const json* v = field(body, "suffix"); v && !get_string(*v, "suffix").empty()) {
    fail_param("suffix", "'suffix' is not supported");
  }
  if (const json* v = field(body, "best_of")) {
    const auto best_of = static_cast<int32_t>(get_int(*v, "best_of", 1, kMaxChoices));
    if (best_of < r.text.n) fail_param("best_of", "'best_of' ({}) must be at least n ({})", best_of, r.text.n);
    if (best_of > r.text.n) {
      if (r.stream) fail_param("best_of", "'best_of' greater than n cannot be streamed (the best are known at the end)");
      r.best_of_returned = r.text.n;
      r.text.n = best_of;
      if (r.text.top_logprobs < 0) {  // the sampled tokens' log-probabilities rank the choices
        r.text.top_logprobs = 0;
        r.logprobs_hidden = true;
      }
    }
  }
  if (const json* v = field(body, "add_special_tokens")) r.text.add_bos = get_bool(*v, "add_special_tokens");
  return r;
}

TokenizeRequest parse_tokenize_request(const json& body) {
  TokenizeRequest r;
  if (const json* v = field(body, "model")) r.model = get_string(*v, "model");
  const json* prompt = field(body, "prompt");
  const json* messages = field(body, "messages");
  if (prompt && messages) fail_param("messages", "give either 'prompt' or 'messages', not both");
  if (!prompt && !messages) fail_param("prompt", "'prompt' (a text) or 'messages' (a conversation) is required");
  if (messages) {
    r.text.chat = true;
    check_messages(body);
    r.text.messages = *messages;
    r.text.tools = apply_tool_choice(body, parse_tools(body), r.text);  // as a chat completion renders them
    check_continuation(r.text);
    r.text.enable_thinking = parse_thinking(body);
    parse_template_flags(body, r.text);
    // The chat template writes the BOS itself: add_special_tokens adds none that it lacks.
    if (const json* v = field(body, "add_special_tokens")) get_bool(*v, "add_special_tokens");
  } else {
    r.text.prompt = get_string(*prompt, "prompt");
    if (const json* v = field(body, "add_special_tokens")) r.text.add_bos = get_bool(*v, "add_special_tokens");
  }
  if (const json* v = field(body, "return_token_strs")) r.return_token_strs = get_bool(*v, "return_token_strs");
  return r;
}

DetokenizeRequest parse_detokenize_request(const json& body) {
  DetokenizeRequest r;
  if (const json* v = field(body, "model")) r.model = get_string(*v, "model");
  const json* tokens = field(body, "tokens");
  if (!tokens) fail_param("tokens", "'tokens' is required");
  if (!tokens->is_array()) fail_param("tokens", "Invalid type for 'tokens': expected an array of token ids, but got {}", kind(*tokens));
  r.tokens.reserve(tokens->size());
  for (size_t i = 0; i < tokens->size(); ++i) {
    const std::string name = fmt::format("tokens[{}]", i);
    r.tokens.push_back(static_cast<int32_t>(get_int((*tokens)[i], name, 0, std::numeric_limits<int32_t>::max())));
  }
  return r;
}

}  // namespace shardlm::http
