// Fuzz target: OpenAI API request bodies. The input is the body of a POST; it is parsed with
// parse_json_body and then as both a chat and a completion request; an accepted chat request is
// rendered with the chat template as the text service does. Parsing may only throw the 400
// ApiException naming the problem, rendering only shardlm::Error; the error reply built from it must
// serialise. Anything else (another exception, a crash, a sanitizer report) is a bug.
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "coordinator/http/api_error.h"
#include "coordinator/http/openai_request.h"
#include "coordinator/http/openai_response.h"
#include "model/chat_template.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

void check_refusal(const shardlm::http::ApiException& e) {
  FUZZ_CHECK(e.error().status == 400);
  FUZZ_CHECK(e.error().type == "invalid_request_error");
  (void)shardlm::http::dump_json(e.error().to_json());
}

void parse_as(const nlohmann::json& body, shardlm::http::Endpoint endpoint) {
  using namespace shardlm;
  using namespace shardlm::http;
  OpenAIRequest r;
  try {
    r = endpoint == Endpoint::kChat ? parse_chat_request(body) : parse_completion_request(body);
  } catch (const ApiException& e) {
    check_refusal(e);
    return;
  }
  FUZZ_CHECK(r.endpoint == endpoint);
  FUZZ_CHECK(!r.model.empty());
  FUZZ_CHECK(r.text.chat == (endpoint == Endpoint::kChat));
  FUZZ_CHECK(r.text.stop.size() <= 16);
  FUZZ_CHECK(r.text.top_logprobs <= 20);
  FUZZ_CHECK(r.text.max_tokens == -1 || r.text.max_tokens >= 1);
  if (!r.text.chat) return;
  ChatOptions options;
  options.enable_thinking = r.text.enable_thinking;
  options.tools = r.text.tools;
  try {
    (void)render_chat(r.text.messages, options);
  } catch (const Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shardlm::http;
  nlohmann::json body;
  try {
    body = parse_json_body(shardlm::fuzz::as_text(data, size));
  } catch (const ApiException& e) {
    check_refusal(e);
    return 0;
  }
  FUZZ_CHECK(body.is_object());
  parse_as(body, Endpoint::kChat);
  parse_as(body, Endpoint::kCompletions);
  return 0;
}
