#include "common/json_limits.h"
#include "coordinator/jobs/batch_file.h"

#include "coordinator/http/openai_response.h"
#include "coordinator/request_error.h"
#include "model/tokenizer_utf8.h"

namespace shardlm::jobs {
namespace {

using nlohmann::json;

bool blank(std::string_view s) { return s.find_first_not_of(" \t\r") == std::string_view::npos; }

// nlohmann's message without its "[json.exception.parse_error.101] " prefix.
std::string json_reason(const json::exception& e) {
  std::string_view what = e.what();
  if (!what.empty() && what.front() == '[' && what.find("] ") != std::string_view::npos) what.remove_prefix(what.find("] ") + 2);
  return std::string(what);
}

std::string kind(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    default: return "a number";
  }
}

}  // namespace

bool is_batch_endpoint(std::string_view url) { return url == kChatEndpoint || url == kCompletionsEndpoint; }

std::vector<InputLine> split_jsonl(std::string_view content, int64_t max_lines) {
  if (const size_t bad = tokenizer_detail::invalid_utf8_at(content); bad != std::string_view::npos) {
    int64_t line = 1;
    for (size_t i = 0; i < bad; ++i) line += content[i] == '\n';
    fail_request(RequestErrorCode::kInvalidRequest,
                 "the file is not UTF-8 text (invalid byte 0x{:02x} at offset {}, line {}); a batch file is JSONL: "
                 "one JSON request per line",
                 static_cast<unsigned char>(content[bad]), bad, line);
  }
  if (const size_t nul = content.find('\0'); nul != std::string_view::npos) {
    fail_request(RequestErrorCode::kInvalidRequest, "the file holds a NUL byte at offset {}; a batch file is JSONL text", nul);
  }
  std::vector<InputLine> lines;
  int64_t line_no = 0;
  size_t start = 0;
  while (start < content.size()) {
    size_t end = content.find('\n', start);
    if (end == std::string_view::npos) end = content.size();
    ++line_no;
    std::string_view text = content.substr(start, end - start);
    if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
    if (!blank(text)) {
      if (static_cast<int64_t>(lines.size()) >= max_lines) {
        fail_request(RequestErrorCode::kInvalidRequest, "the file holds more than {} requests (the limit of one batch)", max_lines);
      }
      lines.push_back(InputLine{line_no, std::string(text)});
    }
    start = end + 1;
  }
  if (lines.empty()) fail_request(RequestErrorCode::kInvalidRequest, "the file holds no requests (it is empty or only blank lines)");
  // A file of which not one line is a JSON object is not a batch file at all (CSV, a JSON array, ...).
  std::string first_reason;
  for (const InputLine& l : lines) {
    try {
      if (parse_json_limited(l.text).is_object()) return lines;
      if (first_reason.empty()) first_reason = fmt::format("line {} is {}, not a JSON object", l.line_no, kind(parse_json_limited(l.text)));
    } catch (const json::exception& e) {
      if (first_reason.empty()) first_reason = fmt::format("line {} is not valid JSON: {}", l.line_no, json_reason(e));
    }
  }
  fail_request(RequestErrorCode::kInvalidRequest,
               "the file is not JSONL: none of its {} lines is a JSON object ({}); a batch file holds one request per "
               "line: {{\"custom_id\": ..., \"method\": \"POST\", \"url\": ..., \"body\": {{...}}}}",
               lines.size(), first_reason);
}

std::optional<LineProblem> check_line(const InputLine& line, const std::string& endpoint, LineEnvelope* out) {
  auto problem = [&](std::string code, std::optional<std::string> custom_id, std::string message) {
    return LineProblem{std::move(code), fmt::format("line {}: {}", line.line_no, message), std::move(custom_id)};
  };
  json j;
  try {
    j = parse_json_limited(line.text);
  } catch (const json::exception& e) {
    return problem("invalid_json", std::nullopt, "not valid JSON: " + json_reason(e));
  }
  if (!j.is_object()) return problem("invalid_line", std::nullopt, fmt::format("expected a JSON object, got {}", kind(j)));
  std::optional<std::string> custom_id;
  const auto cid = j.find("custom_id");
  if (cid == j.end() || cid->is_null()) return problem("missing_custom_id", std::nullopt, "'custom_id' is required");
  if (!cid->is_string()) return problem("invalid_custom_id", std::nullopt, fmt::format("'custom_id' must be a string, not {}", kind(*cid)));
  if (cid->get<std::string>().empty()) return problem("invalid_custom_id", std::nullopt, "'custom_id' must not be empty");
  custom_id = cid->get<std::string>();
  const auto method = j.find("method");
  if (method == j.end() || !method->is_string()) return problem("invalid_method", custom_id, "'method' is required and must be \"POST\"");
  if (method->get<std::string>() != "POST") {
    return problem("invalid_method", custom_id, fmt::format("'method' is '{}'; only POST is supported", method->get<std::string>()));
  }
  const auto url = j.find("url");
  if (url == j.end() || !url->is_string()) return problem("invalid_url", custom_id, "'url' is required (a string)");
  const std::string u = url->get<std::string>();
  if (!is_batch_endpoint(u)) {
    return problem("invalid_url", custom_id,
                   fmt::format("'url' is '{}'; supported: {} and {}", u, kChatEndpoint, kCompletionsEndpoint));
  }
  if (!endpoint.empty() && u != endpoint) {
    return problem("mismatched_url", custom_id, fmt::format("'url' is '{}' but the batch's endpoint is '{}'", u, endpoint));
  }
  const auto body = j.find("body");
  if (body == j.end() || body->is_null()) return problem("missing_body", custom_id, "'body' is required");
  if (!body->is_object()) return problem("invalid_body", custom_id, fmt::format("'body' must be an object, not {}", kind(*body)));
  if (out) {
    out->custom_id = *custom_id;
    out->url = u;
    out->body = std::move(*body);
  }
  return std::nullopt;
}

std::string response_line(const std::string& custom_id, int status_code, const json& body) {
  json line = {{"id", http::new_id("batch_req_")},
               {"custom_id", custom_id},
               {"response", {{"status_code", status_code}, {"request_id", http::new_id("req_")}, {"body", body}}},
               {"error", nullptr}};
  return http::dump_json(line);
}

std::string error_line(const std::optional<std::string>& custom_id, int64_t line_no, const std::string& code,
                       const std::string& message, int status_code, const json& body) {
  json line = {{"id", http::new_id("batch_req_")},
               {"custom_id", custom_id ? json(*custom_id) : json(nullptr)},
               {"response", nullptr},
               {"error", {{"code", code}, {"message", message}, {"line", line_no}}}};
  if (status_code > 0) {
    line["response"] = {{"status_code", status_code}, {"request_id", http::new_id("req_")}, {"body", body}};
  }
  return http::dump_json(line);
}

}  // namespace shardlm::jobs
