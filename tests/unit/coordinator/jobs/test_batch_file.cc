// The batch input file: whole-file refusals (unreadable files), line splitting, each line's envelope
// checks, and the result lines in the OpenAI batch output format.
#include <gtest/gtest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "coordinator/jobs/batch_file.h"
#include "coordinator/request_error.h"

namespace shardlm::jobs {
namespace {

using nlohmann::json;

std::string refusal(const std::string& content, int64_t max_lines = 100) {
  try {
    split_jsonl(content, max_lines);
  } catch (const RequestError& e) {
    EXPECT_EQ(e.code(), RequestErrorCode::kInvalidRequest);
    return e.what();
  }
  ADD_FAILURE() << "accepted: " << content;
  return {};
}

std::string line(const std::string& custom_id, const std::string& url = kChatEndpoint) {
  return json{{"custom_id", custom_id}, {"method", "POST"}, {"url", url}, {"body", {{"model", "m"}}}}.dump();
}

TEST(BatchFile, UnreadableFilesAreRefusedWithTheReason) {
  EXPECT_NE(refusal("").find("holds no requests"), std::string::npos);
  EXPECT_NE(refusal("\n  \r\n\n").find("holds no requests"), std::string::npos);
  const std::string binary("\x89PNG\r\n\x1a\n\xff\xfe", 10);
  EXPECT_NE(refusal(binary).find("not UTF-8 text"), std::string::npos);
  EXPECT_NE(refusal(line("a") + "\n\xc3(\n").find("line 2"), std::string::npos);
  EXPECT_NE(refusal(std::string("{\"a\":1}\n\0\n", 10)).find("NUL byte at offset 8"), std::string::npos);
  const std::string csv = refusal("a,b,c\n1,2,3\n");
  EXPECT_NE(csv.find("not JSONL"), std::string::npos) << csv;
  EXPECT_NE(csv.find("line 1 is not valid JSON"), std::string::npos) << csv;
  EXPECT_NE(refusal("[1, 2]\n\"x\"\n").find("line 1 is an array, not a JSON object"), std::string::npos);
  EXPECT_NE(refusal(line("a") + "\n" + line("b") + "\n" + line("c") + "\n", 2).find("more than 2 requests"), std::string::npos);
}

TEST(BatchFile, SplitsLinesKeepingTheirNumbers) {
  // CRLF, blank lines, no final newline; one object line is enough for the file to be readable.
  const std::string content = line("a") + "\r\n\r\n" + "garbage\n" + "\n" + line("b");
  const std::vector<InputLine> lines = split_jsonl(content, 100);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].line_no, 1);
  EXPECT_EQ(lines[0].text, line("a"));
  EXPECT_EQ(lines[1].line_no, 3);
  EXPECT_EQ(lines[1].text, "garbage");
  EXPECT_EQ(lines[2].line_no, 5);
  EXPECT_EQ(lines[2].text, line("b"));
}

TEST(BatchFile, ChecksEachLinesEnvelope) {
  auto problem = [](const std::string& text, const std::string& endpoint = "") {
    std::optional<LineProblem> p = check_line(InputLine{7, text}, endpoint, nullptr);
    return p ? p->code + ": " + p->message : std::string("ok");
  };
  EXPECT_EQ(problem(line("a")), "ok");
  EXPECT_EQ(problem(line("a", kCompletionsEndpoint), kCompletionsEndpoint), "ok");
  EXPECT_EQ(problem("{oops").substr(0, 30), "invalid_json: line 7: not vali");
  EXPECT_EQ(problem("[1]"), "invalid_line: line 7: expected a JSON object, got an array");
  EXPECT_EQ(problem(R"({"method":"POST"})"), "missing_custom_id: line 7: 'custom_id' is required");
  EXPECT_EQ(problem(R"({"custom_id":5})"), "invalid_custom_id: line 7: 'custom_id' must be a string, not a number");
  EXPECT_EQ(problem(R"({"custom_id":""})"), "invalid_custom_id: line 7: 'custom_id' must not be empty");
  EXPECT_EQ(problem(R"({"custom_id":"a","method":"GET","url":"/v1/completions","body":{}})"),
            "invalid_method: line 7: 'method' is 'GET'; only POST is supported");
  EXPECT_EQ(problem(R"({"custom_id":"a","method":"POST","url":"/v1/embeddings","body":{}})").rfind(
                "invalid_url: line 7: 'url' is '/v1/embeddings'; supported: ", 0),
            0u);
  EXPECT_EQ(problem(line("a", kCompletionsEndpoint), kChatEndpoint),
            "mismatched_url: line 7: 'url' is '/v1/completions' but the batch's endpoint is '/v1/chat/completions'");
  EXPECT_EQ(problem(R"({"custom_id":"a","method":"POST","url":"/v1/completions"})"), "missing_body: line 7: 'body' is required");
  EXPECT_EQ(problem(R"({"custom_id":"a","method":"POST","url":"/v1/completions","body":"x"})"),
            "invalid_body: line 7: 'body' must be an object, not a string");

  LineEnvelope e;
  std::optional<LineProblem> p = check_line(InputLine{1, line("q1")}, "", &e);
  ASSERT_FALSE(p);
  EXPECT_EQ(e.custom_id, "q1");
  EXPECT_EQ(e.url, kChatEndpoint);
  EXPECT_EQ(e.body["model"], "m");
  // A problem after the custom_id was read keeps it (the error line names it).
  p = check_line(InputLine{1, R"({"custom_id":"q9","method":"PUT"})"}, "", nullptr);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->custom_id, "q9");
}

TEST(BatchFile, ResultLinesHaveTheBatchOutputShape) {
  const json ok = json::parse(response_line("q1", 200, {{"object", "chat.completion"}}));
  EXPECT_EQ(ok["custom_id"], "q1");
  EXPECT_EQ(ok["id"].get<std::string>().rfind("batch_req_", 0), 0u);
  EXPECT_EQ(ok["response"]["status_code"], 200);
  EXPECT_EQ(ok["response"]["request_id"].get<std::string>().rfind("req_", 0), 0u);
  EXPECT_EQ(ok["response"]["body"]["object"], "chat.completion");
  EXPECT_TRUE(ok["error"].is_null());

  const json malformed = json::parse(error_line(std::nullopt, 4, "invalid_json", "line 4: not valid JSON"));
  EXPECT_TRUE(malformed["custom_id"].is_null());
  EXPECT_TRUE(malformed["response"].is_null());
  EXPECT_EQ(malformed["error"]["code"], "invalid_json");
  EXPECT_EQ(malformed["error"]["line"], 4);
  EXPECT_EQ(malformed["error"]["message"], "line 4: not valid JSON");

  const json refused = json::parse(error_line("q2", 9, "model_not_found", "line 9: no model", 404, {{"error", {{"code", "x"}}}}));
  EXPECT_EQ(refused["custom_id"], "q2");
  EXPECT_EQ(refused["response"]["status_code"], 404);
  EXPECT_EQ(refused["response"]["body"]["error"]["code"], "x");
  EXPECT_EQ(refused["error"]["line"], 9);
  // Invalid UTF-8 in generated text does not make an invalid line.
  const std::string text = response_line("q3", 200, {{"text", std::string("a\xff")}});
  EXPECT_NO_THROW(json::parse(text));
}

}  // namespace
}  // namespace shardlm::jobs
