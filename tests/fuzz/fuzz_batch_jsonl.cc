// Fuzz target: a batch input file (JSONL) as the job store and runner read it: split_jsonl (a
// RequestError for a file that is not JSONL), check_line of every line against both endpoints and
// none (a LineProblem naming the line for a malformed envelope), then the body of each good line
// parsed as the runner does (the 400 ApiException naming the field) and written back as a result
// line. Anything else (another exception, a crash, a sanitizer report) is a bug.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "coordinator/http/api_error.h"
#include "coordinator/http/openai_request.h"
#include "coordinator/jobs/batch_file.h"
#include "coordinator/request_error.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shardlm;
  using namespace shardlm::jobs;
  std::vector<InputLine> lines;
  try {
    lines = split_jsonl(fuzz::as_text(data, size), 64);
  } catch (const RequestError& e) {
    FUZZ_CHECK(e.code() == RequestErrorCode::kInvalidRequest);
    return 0;
  }
  FUZZ_CHECK(!lines.empty() && lines.size() <= 64);
  int64_t previous = 0;
  for (const InputLine& line : lines) {
    FUZZ_CHECK(line.line_no > previous);
    previous = line.line_no;
    for (const char* url : {"", kChatEndpoint, kCompletionsEndpoint}) {
      const std::string endpoint = url;
      LineEnvelope envelope;
      const std::optional<LineProblem> problem = check_line(line, endpoint, &envelope);
      if (problem) {
        FUZZ_CHECK(!problem->code.empty());
        FUZZ_CHECK(problem->message.rfind("line " + std::to_string(line.line_no) + ": ", 0) == 0);
        (void)error_line(problem->custom_id, line.line_no, problem->code, problem->message);
        continue;
      }
      FUZZ_CHECK(!envelope.custom_id.empty());
      FUZZ_CHECK(is_batch_endpoint(envelope.url));
      FUZZ_CHECK(envelope.body.is_object());
      if (!endpoint.empty()) continue;
      try {
        const http::OpenAIRequest r = envelope.url == kChatEndpoint ? http::parse_chat_request(envelope.body)
                                                                    : http::parse_completion_request(envelope.body);
        (void)response_line(envelope.custom_id, 200, {{"model", r.model}});
      } catch (const http::ApiException& e) {
        (void)error_line(envelope.custom_id, line.line_no, e.error().type, e.error().message, e.error().status,
                         e.error().to_json());
      }
    }
  }
  return 0;
}
