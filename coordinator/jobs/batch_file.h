// The batch input file (JSONL, the OpenAI Batch API's input format) and the result lines (its output
// format). An uploaded file is checked as a whole first — a file that cannot be read as JSONL at all
// (empty, not UTF-8 text, no line a JSON object, too many lines) is refused with a RequestError that
// says why — then each line's envelope is checked on its own:
//   {"custom_id": "q1", "method": "POST", "url": "/v1/chat/completions", "body": {...}}
// A malformed line becomes an error result naming its line number and the reason; the other lines run.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace shardlm::jobs {

inline constexpr const char* kChatEndpoint = "/v1/chat/completions";
inline constexpr const char* kCompletionsEndpoint = "/v1/completions";
bool is_batch_endpoint(std::string_view url);  // one of the two above

struct InputLine {
  int64_t line_no = 0;  // 1-based line number in the file
  std::string text;     // without the line break (and without a trailing '\r')
};

// Splits a file into its non-blank lines. Throws RequestError(kInvalidRequest) when the file is not
// readable as JSONL: empty or only blank lines, not valid UTF-8, holds NUL bytes, more than
// max_lines request lines, or no line at all parses as a JSON object.
std::vector<InputLine> split_jsonl(std::string_view content, int64_t max_lines);

// One line's envelope, or why it is malformed.
struct LineEnvelope {
  std::string custom_id;
  std::string url;
  nlohmann::json body;
};
struct LineProblem {
  std::string code;                      // "invalid_json", "missing_custom_id", "duplicate_custom_id", ...
  std::string message;                   // "line 7: ..." (names the line)
  std::optional<std::string> custom_id;  // when the line had a usable one
};
// `endpoint` empty: the line's url may be either endpoint; otherwise it must equal it.
// Duplicate custom_ids are checked by the caller (it sees every line).
std::optional<LineProblem> check_line(const InputLine& line, const std::string& endpoint, LineEnvelope* out);

// Result lines (compact JSON, no line break):
//   {"id": "batch_req_...", "custom_id": ..., "response": {"status_code", "request_id", "body"},
//    "error": null}                                         (a response: success or HTTP error)
//   {"id": ..., "custom_id": ..., "response": null | {...}, "error": {"code", "message", "line"}}
// The error object is there for every failed line, so the error file names each line and reason.
std::string response_line(const std::string& custom_id, int status_code, const nlohmann::json& body);
std::string error_line(const std::optional<std::string>& custom_id, int64_t line_no, const std::string& code,
                       const std::string& message, int status_code = 0, const nlohmann::json& body = nullptr);

}  // namespace shardlm::jobs
