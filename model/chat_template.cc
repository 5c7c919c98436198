// Native renderer of the Gemma 4 chat template (tests/data/chat_template/gemma-4-31B-it.jinja).
// Each function below mirrors one macro or block of the template; the comments quote the template
// conditions they implement. Jinja value semantics (undefined, truthiness, str(), dictsort, trim)
// come from chat_template_jinja.h.
#include "model/chat_template.h"

#include <set>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/json_limits.h"
#include "model/chat_template_jinja.h"

namespace shardlm {
namespace {

using nlohmann::json;
using jinja::Value;

constexpr std::string_view kQuote = "<|\"|>";  // the template's string delimiter token

std::string delimited(std::string_view s) {
  std::string out(kQuote);
  out += s;
  out += kQuote;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Validation and OpenAI normalisation
// ---------------------------------------------------------------------------------------------

// Deepest JSON nesting accepted (the renderer recurses once per level).
constexpr size_t kMaxNesting = 100;

// Throws when `value` nests deeper than kMaxNesting (checked without recursion).
void check_nesting(const json& value, const std::string& where) {
  std::vector<std::pair<const json*, size_t>> stack = {{&value, 1}};
  while (!stack.empty()) {
    const auto [v, depth] = stack.back();
    stack.pop_back();
    if (!v->is_structured()) continue;
    if (depth > kMaxNesting) fail("{} nests JSON deeper than {} levels", where, kMaxNesting);
    for (const json& child : *v) stack.emplace_back(&child, depth + 1);
  }
}

const std::set<std::string, std::less<>> kRoles = {"system", "developer", "user", "assistant", "tool"};

// Validates a message's content: a string, null, an array of text parts, or (for a tool message that
// is folded) a JSON object.
void check_content(const json& message, const std::string& where, bool allow_object) {
  auto it = message.find("content");
  if (it == message.end() || it->is_null() || it->is_string()) return;
  if (it->is_object() && allow_object) return;
  if (!it->is_array()) {
    fail("{}.content must be a string, an array of text parts or null, not {}", where, it->type_name());
  }
  for (size_t j = 0; j < it->size(); ++j) {
    const json& part = (*it)[j];
    const std::string pw = fmt::format("{}.content[{}]", where, j);
    if (!part.is_object()) fail("{} must be an object {{type, text}}, not {}", pw, part.type_name());
    auto type = part.find("type");
    if (type == part.end() || !type->is_string()) fail("{}.type is missing or not a string", pw);
    if (*type != "text") {
      fail("{}: unsupported content part type '{}' (only text parts are supported)", pw,
           type->get<std::string>());
    }
    auto text = part.find("text");
    if (text == part.end() || !text->is_string()) fail("{}.text is missing or not a string", pw);
  }
}

// The trimmed texts of (validated) text parts, joined.
std::string joined_text_parts(const json& parts) {
  std::string out;
  for (const json& part : parts) out += jinja::strip(part["text"].get_ref<const std::string&>());
  return out;
}

// Validates an assistant message's tool_calls and parses string arguments.
void normalize_tool_calls(json& message, const std::string& where) {
  auto it = message.find("tool_calls");
  if (it == message.end() || it->is_null()) return;
  if (message["role"] != "assistant") fail("{}.tool_calls: only assistant messages carry tool calls", where);
  if (!it->is_array()) fail("{}.tool_calls must be an array, not {}", where, it->type_name());
  for (size_t j = 0; j < it->size(); ++j) {
    json& call = (*it)[j];
    const std::string cw = fmt::format("{}.tool_calls[{}]", where, j);
    if (!call.is_object()) fail("{} must be an object, not {}", cw, call.type_name());
    auto fn = call.find("function");
    if (fn == call.end() || !fn->is_object()) fail("{}.function is missing or not an object", cw);
    auto name = fn->find("name");
    if (name == fn->end() || !name->is_string() || name->get_ref<const std::string&>().empty()) {
      fail("{}.function.name is missing or not a non-empty string", cw);
    }
    auto args = fn->find("arguments");
    if (args == fn->end() || args->is_null() || args->is_object()) continue;
    if (!args->is_string()) {
      fail("{}.function.arguments must be a JSON object or a string holding one, not {}", cw, args->type_name());
    }
    const std::string text = args->get<std::string>();
    if (jinja::strip(text).empty()) {
      *args = json::object();
      continue;
    }
    json parsed = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded()) {
      fail("{}.function.arguments is not valid JSON: {}", cw, text.size() > 200 ? text.substr(0, 200) + "..." : text);
    }
    try {
      json_detail::check_integer_ranges(text);
    } catch (const json::exception& e) {
      fail("{}.function.arguments: {}", cw, e.what());
    }
    if (!parsed.is_object()) {
      fail("{}.function.arguments must hold a JSON object, not {}", cw, parsed.type_name());
    }
    *args = std::move(parsed);
  }
}

void check_message_fields(const json& m, const std::string& where) {
  auto rc = m.find("reasoning_content");
  if (rc != m.end() && !rc->is_null() && !rc->is_string()) {
    fail("{}.reasoning_content must be a string, not {}", where, rc->type_name());
  }
  auto trs = m.find("tool_responses");
  if (trs != m.end() && !trs->is_null()) {
    if (!trs->is_array()) fail("{}.tool_responses must be an array, not {}", where, trs->type_name());
    for (size_t j = 0; j < trs->size(); ++j) {
      const json& tr = (*trs)[j];
      if (!tr.is_object()) fail("{}.tool_responses[{}] must be an object {{name, response}}", where, j);
      auto name = tr.find("name");
      if (name != tr.end() && !name->is_string()) fail("{}.tool_responses[{}].name must be a string", where, j);
    }
  }
}

// The {name, response} a tool message folds into.
json tool_response_of(const json& tool_message, const json& assistant, const std::string& where,
                      size_t assistant_index) {
  std::string name;
  auto id = tool_message.find("tool_call_id");
  if (id != tool_message.end() && id->is_string()) {
    for (const json& call : assistant["tool_calls"]) {
      auto cid = call.find("id");
      if (cid != call.end() && *cid == *id) {
        name = call["function"]["name"].get<std::string>();
        break;
      }
    }
  }
  if (name.empty()) {
    auto n = tool_message.find("name");
    if (n != tool_message.end() && n->is_string() && !n->get_ref<const std::string&>().empty()) {
      name = n->get<std::string>();
    } else if (id != tool_message.end() && !id->is_null()) {
      fail("{}: tool_call_id {} matches no tool call of messages[{}], and the message has no name", where,
           id->dump(), assistant_index);
    } else {
      fail("{}: a tool message needs a tool_call_id (or a name) saying which tool call it answers", where);
    }
  }
  json response = "";
  auto content = tool_message.find("content");
  if (content != tool_message.end()) {
    if (content->is_string() || content->is_object()) {
      response = *content;
    } else if (content->is_array()) {
      std::string text;
      for (const json& part : *content) text += part["text"].get<std::string>();
      response = text;
    }
  }
  return json{{"name", name}, {"response", std::move(response)}};
}

}  // namespace

json normalize_chat_messages(const json& messages, bool fold_tool_messages) {
  if (!messages.is_array()) fail("messages must be a JSON array, not {}", messages.type_name());
  if (messages.empty()) fail("messages is empty");
  json out = json::array();
  std::vector<size_t> origin;  // index in `messages` of each element of `out`
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string where = fmt::format("messages[{}]", i);
    const json& src = messages[i];
    if (!src.is_object()) fail("{} must be an object, not {}", where, src.type_name());
    check_nesting(src, where);
    auto role_it = src.find("role");
    if (role_it == src.end() || !role_it->is_string()) fail("{}.role is missing or not a string", where);
    const std::string role = role_it->get<std::string>();
    if (!kRoles.count(role)) {
      fail("{}.role '{}' is not one of system, developer, user, assistant, tool", where, role);
    }
    const bool folds = role == "tool" && fold_tool_messages;
    check_content(src, where, folds);
    check_message_fields(src, where);
    if (folds) {
      const bool follows_call = !out.empty() && out.back()["role"] == "assistant" &&
                                jinja::truthy(jinja::item(&out.back(), "tool_calls"));
      if (!follows_call) fail("{}: a tool message must follow an assistant message with tool_calls", where);
      if (jinja::truthy(jinja::item(&src, "tool_calls"))) fail("{}.tool_calls: only assistant messages carry tool calls", where);
      json response = tool_response_of(src, out.back(), where, origin.back());
      json& target = out.back()["tool_responses"];
      if (!target.is_array()) target = json::array();
      target.push_back(std::move(response));
      continue;
    }
    json m = src;
    normalize_tool_calls(m, where);
    check_nesting(m, where);
    if (out.empty() && (role == "system" || role == "developer")) {
      auto content = m.find("content");
      if (content != m.end() && content->is_array()) *content = joined_text_parts(*content);
      if (content == m.end() || !content->is_string()) {
        fail("{}.content: the leading {} message needs text content", where, role);
      }
    }
    out.push_back(std::move(m));
    origin.push_back(i);
  }
  return out;
}

namespace {

// ---------------------------------------------------------------------------------------------
// The template's macros
// ---------------------------------------------------------------------------------------------

const std::set<std::string, std::less<>> kStandardKeys = {"description", "type", "properties", "required",
                                                          "nullable"};

// macro format_argument(argument, escape_keys)
void format_argument(std::string& out, Value arg, bool escape_keys) {
  if (jinja::is_string(arg)) {
    out += delimited(arg->get_ref<const std::string&>());
  } else if (arg != nullptr && arg->is_boolean()) {
    out += arg->get<bool>() ? "true" : "false";
  } else if (jinja::is_mapping(arg)) {
    out += '{';
    bool first = true;
    for (const auto& [key, value] : jinja::dictsort(*arg)) {
      if (!first) out += ',';
      first = false;
      out += escape_keys ? delimited(key) : key;
      out += ':';
      format_argument(out, value, escape_keys);
    }
    out += '}';
  } else if (arg == nullptr || arg->is_array()) {  // `is sequence` (an undefined value is an empty one)
    out += '[';
    if (arg != nullptr) {
      for (size_t i = 0; i < arg->size(); ++i) {
        if (i) out += ',';
        format_argument(out, &(*arg)[i], escape_keys);
      }
    }
    out += ']';
  } else {
    out += jinja::to_str(arg);
  }
}

// `{% for item in list %}<|"|>{{ item }}<|"|>{% if not loop.last %},{% endif %}{% endfor %}`
void quoted_list(std::string& out, Value list, const std::string& where) {
  const auto items = jinja::iterate(list, where);
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ',';
    out += delimited(jinja::to_str(&items[i]));
  }
}

// `{% if add_comma %},{% else %}{% set add_comma = true %}{% endif %}`
void comma_or_first(std::string& out, bool& add_comma) {
  if (add_comma) {
    out += ',';
  } else {
    add_comma = true;
  }
}

// macro format_parameters(properties, required)
void format_parameters(std::string& out, Value properties, const std::string& where) {
  if (!jinja::is_mapping(properties)) fail("{} must be an object", where);
  bool found_first = false;
  for (const auto& [key, value] : jinja::dictsort(*properties)) {
    if (kStandardKeys.count(key)) continue;
    const std::string vw = where + "." + key;
    bool add_comma = false;
    if (found_first) out += ',';
    found_first = true;
    out += key + ":{";
    if (jinja::truthy(jinja::item(value, "description"))) {
      out += "description:" + delimited(jinja::to_str(jinja::item(value, "description")));
      add_comma = true;
    }
    if (jinja::truthy(jinja::item(value, "nullable"))) {
      comma_or_first(out, add_comma);
      out += "nullable:true";
    }
    const std::string type = jinja::upper(jinja::to_str(jinja::item(value, "type")));
    if (type == "STRING") {
      if (jinja::truthy(jinja::item(value, "enum"))) {
        comma_or_first(out, add_comma);
        out += "enum:";
        format_argument(out, jinja::item(value, "enum"), true);
      }
    } else if (type == "OBJECT") {
      out += ",properties:{";
      Value props = jinja::item(value, "properties");
      if (jinja::is_mapping(props)) {
        format_parameters(out, props, vw + ".properties");
      } else if (jinja::is_mapping(value)) {
        format_parameters(out, value, vw);
      }
      out += '}';
      if (jinja::truthy(jinja::item(value, "required"))) {
        out += ",required:[";
        quoted_list(out, jinja::item(value, "required"), vw + ".required");
        out += ']';
      }
    } else if (type == "ARRAY") {
      Value items = jinja::item(value, "items");
      if (jinja::is_mapping(items) && jinja::truthy(items)) {
        out += ",items:{";
        bool items_first = false;
        for (const auto& [item_key, item_value] : jinja::dictsort(*items)) {
          if (jinja::is_none(item_value)) continue;
          if (items_first) out += ',';
          items_first = true;
          const std::string iw = vw + ".items." + item_key;
          if (item_key == "properties") {
            out += "properties:{";
            if (jinja::is_mapping(item_value)) format_parameters(out, item_value, iw);
            out += '}';
          } else if (item_key == "required") {
            out += "required:[";
            quoted_list(out, item_value, iw);
            out += ']';
          } else if (item_key == "type") {
            out += "type:";
            if (jinja::is_string(item_value)) {
              const json upper = jinja::upper(item_value->get_ref<const std::string&>());
              format_argument(out, &upper, true);
            } else {  // item_value | map('upper') | list
              json uppers = json::array();
              for (const json& t : jinja::iterate(item_value, iw)) uppers.push_back(jinja::upper(jinja::to_str(&t)));
              format_argument(out, &uppers, true);
            }
          } else {
            out += item_key + ":";
            format_argument(out, item_value, true);
          }
        }
        out += '}';
      }
    }
    comma_or_first(out, add_comma);
    out += "type:" + delimited(type) + "}";
  }
}

// macro format_function_declaration(tool_data), followed by `| trim`
std::string format_function_declaration(const json& tool, const std::string& where) {
  if (!tool.is_object()) fail("{} must be an object {{type, function}}, not {}", where, tool.type_name());
  Value fn = jinja::item(&tool, "function");
  if (!jinja::is_mapping(fn)) fail("{}.function is missing or not an object", where);
  Value name = jinja::item(fn, "name");
  if (!jinja::is_string(name) || name->get_ref<const std::string&>().empty()) {
    fail("{}.function.name is missing or not a non-empty string", where);
  }
  std::string out = "declaration:" + jinja::to_str(name) + "{description:" +
                    delimited(jinja::to_str(jinja::item(fn, "description")));
  Value params = jinja::item(fn, "parameters");
  if (jinja::truthy(params)) {
    out += ",parameters:{";
    if (jinja::truthy(jinja::item(params, "properties"))) {
      out += "properties:{";
      format_parameters(out, jinja::item(params, "properties"), where + ".function.parameters.properties");
      out += "},";
    }
    if (jinja::truthy(jinja::item(params, "required"))) {
      out += "required:[";
      quoted_list(out, jinja::item(params, "required"), where + ".function.parameters.required");
      out += "],";
    }
    if (jinja::truthy(jinja::item(params, "type"))) {
      out += "type:" + delimited(jinja::upper(jinja::to_str(jinja::item(params, "type")))) + "}";
    }
  }
  if (fn->contains("response")) {
    Value response = jinja::item(fn, "response");
    out += ",response:{";
    if (jinja::truthy(jinja::item(response, "description"))) {
      out += "description:" + delimited(jinja::to_str(jinja::item(response, "description"))) + ",";
    }
    const std::string type = jinja::upper(jinja::to_str(jinja::item(response, "type")));
    if (type == "OBJECT") out += "type:" + delimited(type) + "}";
  }
  out += '}';
  return jinja::strip(out);
}

// macro strip_thinking(text): drops every "<|channel>...<channel|>" block, then trims.
std::string strip_thinking(const std::string& text) {
  std::string result;
  size_t begin = 0;
  while (true) {
    const size_t end = text.find("<channel|>", begin);
    const std::string_view part(text.data() + begin, (end == std::string::npos ? text.size() : end) - begin);
    const size_t open = part.find("<|channel>");
    result += part.substr(0, open);
    if (end == std::string::npos) break;
    begin = end + std::string_view("<channel|>").size();
  }
  return jinja::strip(result);
}

// `key:value` pairs of a mapping in dictsort order, comma-separated, keys unescaped.
void format_mapping_body(std::string& out, const json& mapping) {
  bool first = true;
  for (const auto& [key, value] : jinja::dictsort(mapping)) {
    if (!first) out += ',';
    first = false;
    out += key + ":";
    format_argument(out, value, false);
  }
}

}  // namespace

std::string render_chat(const json& raw_messages, const ChatOptions& options) {
  const json messages = normalize_chat_messages(raw_messages, options.fold_tool_messages);
  const json& tools = options.tools;
  if (!tools.is_null() && !tools.is_array()) fail("tools must be an array, not {}", tools.type_name());
  check_nesting(tools, "tools");

  std::string out = "<bos>";
  std::string prev_type;  // ns.prev_message_type ("" = None)
  size_t first = 0;       // loop_messages = messages[first:]

  const std::string& first_role = messages[0]["role"].get_ref<const std::string&>();
  const bool leading_system = first_role == "system" || first_role == "developer";
  // {% if (enable_thinking is defined and enable_thinking) or tools or messages[0]['role'] in [...] %}
  if (options.enable_thinking || jinja::truthy(&tools) || leading_system) {
    out += "<|turn>system\n";
    if (options.enable_thinking) {
      out += "<|think|>\n";
      prev_type = "think";
    }
    if (leading_system) {
      out += jinja::strip(messages[0]["content"].get_ref<const std::string&>());
      first = 1;
    }
    if (jinja::truthy(&tools)) {
      for (size_t i = 0; i < tools.size(); ++i) {
        out += "<|tool>" + format_function_declaration(tools[i], fmt::format("tools[{}]", i)) + "<tool|>";
      }
      prev_type = "tool";
    }
    out += "<turn|>\n";
  }

  // ns.last_user_message: loop index of the last user message.
  long last_user = -1;
  for (size_t i = first; i < messages.size(); ++i) {
    if (messages[i]["role"] == "user") last_user = static_cast<long>(i - first);
  }

  for (size_t i = first; i < messages.size(); ++i) {
    const json& m = messages[i];
    const long loop_index = static_cast<long>(i - first);
    const std::string& src_role = m["role"].get_ref<const std::string&>();
    const std::string role = src_role == "assistant" ? "model" : src_role;
    Value tool_calls = jinja::item(&m, "tool_calls");
    Value tool_responses = jinja::item(&m, "tool_responses");
    Value content = jinja::item(&m, "content");

    if (!(prev_type == "tool_response" && jinja::truthy(tool_calls))) out += "<|turn>" + role + "\n";
    prev_type.clear();

    if (jinja::truthy(tool_calls)) {
      Value reasoning = jinja::item(&m, "reasoning_content");
      if (jinja::truthy(reasoning) && loop_index > last_user) {
        out += "<|channel>thought\n" + jinja::to_str(reasoning) + "<channel|>";
      }
      for (const json& call : *tool_calls) {
        const json& fn = call["function"];
        out += "<|tool_call>call:" + fn["name"].get<std::string>() + "{";
        Value args = jinja::item(&fn, "arguments");
        if (jinja::is_mapping(args)) {
          format_mapping_body(out, *args);
        } else if (jinja::is_string(args)) {
          out += args->get_ref<const std::string&>();
        }
        out += "}<tool_call|>";
      }
      prev_type = "tool_call";
    }

    if (jinja::truthy(tool_responses)) {
      for (const json& tr : *tool_responses) {
        Value name = jinja::item(&tr, "name");
        const std::string shown = name == nullptr ? "unknown" : name->get<std::string>();
        Value response = jinja::item(&tr, "response");
        out += "<|tool_response>response:" + shown + "{";
        if (jinja::is_mapping(response)) {
          format_mapping_body(out, *response);
        } else {
          out += "value:";
          format_argument(out, response, false);
        }
        out += "}<tool_response|>";
      }
      prev_type = "tool_response";
    }

    if (jinja::is_string(content)) {
      const std::string& text = content->get_ref<const std::string&>();
      out += role == "model" ? strip_thinking(text) : jinja::strip(text);
    } else if (jinja::is_list(content)) {
      for (const json& part : *content) {
        const std::string& text = part["text"].get_ref<const std::string&>();
        out += role == "model" ? strip_thinking(text) : jinja::strip(text);
      }
    } else if (jinja::is_mapping(content)) {
      fail("messages[{}].content: a JSON object is only accepted in tool messages that are folded", i);
    }

    if (!(jinja::truthy(tool_responses) && !jinja::truthy(content))) out += "<turn|>\n";
  }

  if (options.add_generation_prompt) {
    if (prev_type != "tool_response") out += "<|turn>model\n";
    if (!options.enable_thinking && options.empty_thought_block) out += "<|channel>thought\n<channel|>";
  }
  return out;
}

std::string continue_final_message(const std::string& rendered, const json& messages) {
  if (!messages.is_array() || messages.empty()) fail("continue_final_message: there is no message to continue");
  const json& last = messages.back();
  const json* role = last.is_object() && last.contains("role") ? &last["role"] : nullptr;
  if (role == nullptr || !role->is_string() || role->get<std::string>() != "assistant") {
    fail("continue_final_message: the last message (messages[{}]) must be the assistant's", messages.size() - 1);
  }
  std::string text;
  bool found = false;
  const json* content = last.contains("content") ? &last["content"] : nullptr;
  if (content != nullptr && content->is_string()) {
    text = content->get<std::string>();
    found = true;
  } else if (content != nullptr && content->is_array()) {
    for (auto it = content->rbegin(); it != content->rend() && !found; ++it) {
      if (it->is_object() && it->contains("text") && (*it)["text"].is_string()) {
        text = (*it)["text"].get<std::string>();
        found = true;
      }
    }
  }
  // Python's str.strip(), as transformers strips the text (the template's `| trim` is the same).
  const std::string stripped = jinja::strip(text);
  if (!found || stripped.empty()) fail("continue_final_message: the last message holds no text to continue");
  const size_t b = text.find(stripped);  // where the stripped text begins: after the leading blanks
  // The text lies before the end of its turn: a short text ("<", "n") must not match inside the
  // closing marker (transformers' rindex over the whole prompt would).
  const std::string turn_end = "<turn|>\n";
  const bool closed = rendered.size() >= turn_end.size() && rendered.compare(rendered.size() - turn_end.size(), turn_end.size(), turn_end) == 0;
  const size_t limit = closed ? rendered.size() - turn_end.size() : rendered.size();
  const size_t at = stripped.size() <= limit ? rendered.rfind(stripped, limit - stripped.size()) : std::string::npos;
  if (at == std::string::npos) fail("continue_final_message: the chat template dropped the last message's text");
  // As transformers: keep the text's trailing spaces only where the template kept them.
  const std::string lstripped = text.substr(b);
  const size_t keep = rendered.compare(at, lstripped.size(), text) == 0 ? lstripped.size() : stripped.size();
  return rendered.substr(0, at + keep);
}

std::vector<std::string> missing_chat_tokens(const Tokenizer& tokenizer) {
  std::vector<std::string> missing;
  for (const char* token : {"<bos>", "<|turn>", "<turn|>", "<|channel>", "<channel|>"}) {
    if (!tokenizer.find_token(token)) missing.emplace_back(token);
  }
  return missing;
}

}  // namespace shardlm
