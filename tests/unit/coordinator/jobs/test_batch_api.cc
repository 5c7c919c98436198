// The OpenAI Batch API routes on a real HTTP server (real sockets, API key) over a job service whose
// text backend is scripted: uploads (multipart), refusals, batch creation, retrieval, listing,
// cancel, output and error files, and the answers when batch jobs are off.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include <nlohmann/json.hpp>
#include <sqlite3.h>

#include "coordinator/http/api_error.h"
#include "coordinator/http/http_server.h"
#include "coordinator/jobs/batch_api.h"
#include "coordinator/jobs/batch_file.h"
#include "coordinator/jobs/job_service.h"
#include "tests/unit/coordinator/http/http_test_support.h"

namespace shardlm::jobs {
namespace {

using http::testing::HttpResult;
using http::testing::ScriptedBackend;
using http::testing::TestClient;
using nlohmann::json;
namespace fs = std::filesystem;

const std::string kAuth = "Authorization: Bearer sk-batch";

std::string multipart(const std::string& purpose, const std::string& filename, const std::string& data) {
  const std::string b = "----boundary7MA4YWxkTrZu0gW";
  return "--" + b + "\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n" + purpose + "\r\n--" + b +
         "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" + filename +
         "\"\r\nContent-Type: application/octet-stream\r\n\r\n" + data + "\r\n--" + b + "--\r\n";
}

std::string request_line(const std::string& id, const std::string& model = "tiny") {
  return json{{"custom_id", id},
              {"method", "POST"},
              {"url", kChatEndpoint},
              {"body", {{"model", model}, {"messages", json::array({{{"role", "user"}, {"content", "hi " + id}}})}}}}
      .dump();
}

class BatchApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = fs::temp_directory_path() / ("shardlm_batch_api_" + std::to_string(rd()));
    backend_ = std::make_shared<ScriptedBackend>();
    JobServiceOptions o;
    o.runner.poll_s = 0.05;
    jobs_ = std::make_unique<JobService>(dir_.string(), backend_, o);
    jobs_->start();
    api_ = std::make_unique<BatchApi>(jobs_.get());
    http::HttpServerOptions ho;
    ho.port = 0;
    ho.api_keys = {"sk-batch"};
    server_ = std::make_unique<http::HttpServer>(backend_, ho);
    api_->add_routes(*server_);
    server_->start();
  }
  void TearDown() override {
    server_->stop();
    jobs_->stop();
    jobs_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  HttpResult call(const std::string& method, const std::string& target, const std::string& body = "") {
    TestClient c(server_->port());
    return c.request(method, target, body, {kAuth});
  }
  json upload(const std::string& content, const std::string& name = "in.jsonl") {
    HttpResult r = call("POST", "/v1/files", multipart("batch", name, content));
    EXPECT_EQ(r.status, 200) << r.body;
    return r.json();
  }
  json wait_batch(const std::string& id, const std::string& status) {
    json b;
    ScriptedBackend::eventually([&] {
      b = call("GET", "/v1/batches/" + id).json();
      return b["status"] == status;
    });
    EXPECT_EQ(b["status"], status) << b.dump();
    return b;
  }

  fs::path dir_;
  std::shared_ptr<ScriptedBackend> backend_;
  std::unique_ptr<JobService> jobs_;
  std::unique_ptr<BatchApi> api_;
  std::unique_ptr<http::HttpServer> server_;
};

TEST_F(BatchApiTest, FilesUploadAndReadBack) {
  TestClient anonymous(server_->port());
  EXPECT_EQ(anonymous.request("GET", "/v1/files").status, 401);  // under /v1/: the API key applies

  const std::string content = request_line("a") + "\n" + request_line("b") + "\n";
  const json f = upload(content, "mine.jsonl");
  EXPECT_EQ(f["object"], "file");
  EXPECT_EQ(f["purpose"], "batch");
  EXPECT_EQ(f["filename"], "mine.jsonl");
  EXPECT_EQ(f["bytes"], content.size());
  EXPECT_EQ(f["status"], "processed");
  const std::string id = f["id"];
  EXPECT_EQ(call("GET", "/v1/files/" + id).json()["id"], id);
  HttpResult c = call("GET", "/v1/files/" + id + "/content");
  EXPECT_EQ(c.status, 200);
  EXPECT_EQ(c.body, content);
  const json list = call("GET", "/v1/files?purpose=batch").json();
  EXPECT_EQ(list["object"], "list");
  ASSERT_EQ(list["data"].size(), 1u);
  EXPECT_EQ(list["data"][0]["id"], id);
  EXPECT_EQ(call("GET", "/v1/files/file-nope").status, 404);
  EXPECT_EQ(call("GET", "/v1/files/file-nope/content").status, 404);
  EXPECT_EQ(call("GET", "/v1/files/" + id + "/other").status, 404);
  EXPECT_EQ(call("DELETE", "/v1/files/" + id + "/content").status, 405);

  // Pages as OpenAI's: newest first unless order=asc, after a file id, limit.
  const std::string second = upload(content, "two.jsonl")["id"], third = upload(content, "three.jsonl")["id"];
  json page = call("GET", "/v1/files?limit=2").json();
  ASSERT_EQ(page["data"].size(), 2u);
  EXPECT_EQ(page["data"][0]["id"], third);
  EXPECT_EQ(page["first_id"], third);
  EXPECT_EQ(page["last_id"], second);
  EXPECT_EQ(page["has_more"], true);
  page = call("GET", "/v1/files?limit=2&after=" + second).json();
  ASSERT_EQ(page["data"].size(), 1u);
  EXPECT_EQ(page["data"][0]["id"], id);
  EXPECT_EQ(page["has_more"], false);
  page = call("GET", "/v1/files?order=asc&after=" + id).json();
  ASSERT_EQ(page["data"].size(), 2u);
  EXPECT_EQ(page["data"][0]["id"], second);
  EXPECT_EQ(call("GET", "/v1/files?order=up").json()["error"]["param"], "order");
  EXPECT_EQ(call("GET", "/v1/files?after=file-nope").json()["error"]["param"], "after");
  EXPECT_EQ(call("GET", "/v1/files?limit=10001").json()["error"]["param"], "limit");
}

TEST_F(BatchApiTest, RoutesAnswerHeadAndNameWhatTheyAllow) {
  EXPECT_EQ(call("HEAD", "/v1/files").status, 200);
  EXPECT_EQ(call("HEAD", "/v1/batches").status, 200);
  HttpResult r = call("PUT", "/v1/batches");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.header("allow"), "GET, POST");
  r = call("GET", "/v1/batches/batch_x/cancel");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.header("allow"), "POST");
  r = call("PUT", "/v1/files/file-x");
  EXPECT_EQ(r.header("allow"), "GET, DELETE");
  r = call("POST", "/v1/filesXYZ");
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.body.find("Invalid URL (POST /v1/filesXYZ)"), std::string::npos) << r.body;
  r = call("GET", "/v1/batches?limit=99999999999");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("'limit' must be in 1.."), std::string::npos) << r.body;
  r = call("GET", "/v1/batches?after=batch_nope");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.json()["error"]["param"], "after");
}

TEST_F(BatchApiTest, UnreadableUploadsAreRefusedWithTheReason) {
  HttpResult r = call("POST", "/v1/files", "{\"purpose\": \"batch\"}");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("multipart/form-data"), std::string::npos) << r.body;
  r = call("POST", "/v1/files", multipart("fine-tune", "a.jsonl", request_line("a")));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.json()["error"]["param"], "purpose");
  r = call("POST", "/v1/files", multipart("batch", "a.csv", "name,age\nbob,3\n"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.json()["error"]["param"], "file");
  EXPECT_NE(r.json()["error"]["message"].get<std::string>().find("not JSONL"), std::string::npos) << r.body;
  r = call("POST", "/v1/files", multipart("batch", "a.bin", std::string("\xff\xd8\xff\xe0", 4)));
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("not UTF-8"), std::string::npos) << r.body;
  r = call("POST", "/v1/files", multipart("batch", "empty.jsonl", ""));
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("no requests"), std::string::npos) << r.body;
  EXPECT_EQ(call("GET", "/v1/files").json()["data"].size(), 0u);  // nothing was kept
}

TEST_F(BatchApiTest, BatchesRunAndReportTheirFiles) {
  const std::string file_id = upload(request_line("a") + "\n" + "{broken\n" + request_line("c", "other") + "\n")["id"];
  // Creation refusals.
  EXPECT_EQ(call("POST", "/v1/batches", "{}").json()["error"]["param"], "input_file_id");
  EXPECT_EQ(call("POST", "/v1/batches", json{{"input_file_id", file_id}, {"endpoint", "/v1/embeddings"}, {"completion_window", "24h"}}.dump())
                .json()["error"]["param"],
            "endpoint");
  EXPECT_EQ(call("POST", "/v1/batches", json{{"input_file_id", file_id}, {"endpoint", kChatEndpoint}, {"completion_window", "1h"}}.dump())
                .json()["error"]["param"],
            "completion_window");
  EXPECT_EQ(call("POST", "/v1/batches", json{{"input_file_id", "file-x"}, {"endpoint", kChatEndpoint}, {"completion_window", "24h"}}.dump())
                .status,
            404);
  EXPECT_EQ(call("POST", "/v1/batches",
                 json{{"input_file_id", file_id}, {"endpoint", kChatEndpoint}, {"completion_window", "24h"}, {"metadata", {{"k", 1}}}}.dump())
                .json()["error"]["param"],
            "metadata");
  EXPECT_EQ(call("POST", "/v1/batches", "not json").status, 400);

  HttpResult created = call("POST", "/v1/batches",
                            json{{"input_file_id", file_id},
                                 {"endpoint", kChatEndpoint},
                                 {"completion_window", "24h"},
                                 {"metadata", {{"project", "sea"}}}}
                                .dump());
  ASSERT_EQ(created.status, 200) << created.body;
  const json b = created.json();
  EXPECT_EQ(b["object"], "batch");
  EXPECT_EQ(b["endpoint"], kChatEndpoint);
  EXPECT_EQ(b["input_file_id"], file_id);
  EXPECT_EQ(b["completion_window"], "24h");
  EXPECT_EQ(b["request_counts"]["total"], 3);
  EXPECT_EQ(b["metadata"]["project"], "sea");
  EXPECT_TRUE(b["output_file_id"].is_null());
  const json done = wait_batch(b["id"], "completed");
  EXPECT_EQ(done["request_counts"]["completed"], 1);
  EXPECT_EQ(done["request_counts"]["failed"], 2);
  EXPECT_TRUE(done["completed_at"].is_number());
  EXPECT_TRUE(done["in_progress_at"].is_number());
  EXPECT_TRUE(done["cancelled_at"].is_null());

  const json out_file = call("GET", "/v1/files/" + done["output_file_id"].get<std::string>()).json();
  EXPECT_EQ(out_file["purpose"], "batch_output");
  const std::string output = call("GET", "/v1/files/" + done["output_file_id"].get<std::string>() + "/content").body;
  EXPECT_EQ(out_file["bytes"], output.size());
  const json ok = json::parse(output.substr(0, output.find('\n')));
  EXPECT_EQ(ok["custom_id"], "a");
  EXPECT_EQ(ok["response"]["status_code"], 200);
  EXPECT_EQ(ok["response"]["body"]["choices"][0]["message"]["content"], "ok");
  const std::string errors = call("GET", "/v1/files/" + done["error_file_id"].get<std::string>() + "/content").body;
  EXPECT_NE(errors.find("\"line\":2"), std::string::npos) << errors;
  EXPECT_NE(errors.find("\"line\":3"), std::string::npos) << errors;
  EXPECT_NE(errors.find("model_not_found"), std::string::npos) << errors;

  EXPECT_EQ(call("POST", "/v1/batches/" + b["id"].get<std::string>() + "/cancel").status, 400);  // already completed
  EXPECT_EQ(call("GET", "/v1/batches/batch_nope").status, 404);
  EXPECT_EQ(call("POST", "/v1/batches/batch_nope/cancel").status, 404);
  EXPECT_EQ(call("DELETE", "/v1/batches/" + b["id"].get<std::string>()).status, 405);
  EXPECT_EQ(call("GET", "/v1/batches/" + b["id"].get<std::string>() + "/x").status, 404);
  EXPECT_EQ(call("GET", "/v1/batchesX").status, 404);
}

TEST_F(BatchApiTest, ListAndCancel) {
  backend_->script = [](const TextRequest&) {
    http::testing::Script s;
    s.until_cancelled = true;  // every line runs until cancelled
    s.finish.finish_reason = "stop";
    return s;
  };
  const std::string file_id = upload(request_line("a") + "\n" + request_line("b") + "\n")["id"];
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    ids.push_back(call("POST", "/v1/batches", json{{"input_file_id", file_id}, {"endpoint", kChatEndpoint}, {"completion_window", "24h"}}.dump())
                      .json()["id"]);
  }
  json page = call("GET", "/v1/batches?limit=2").json();
  EXPECT_EQ(page["object"], "list");
  ASSERT_EQ(page["data"].size(), 2u);
  EXPECT_EQ(page["data"][0]["id"], ids[2]);
  EXPECT_EQ(page["first_id"], ids[2]);
  EXPECT_EQ(page["last_id"], ids[1]);
  EXPECT_EQ(page["has_more"], true);
  page = call("GET", "/v1/batches?limit=2&after=" + ids[1]).json();
  ASSERT_EQ(page["data"].size(), 1u);
  EXPECT_EQ(page["data"][0]["id"], ids[0]);
  EXPECT_EQ(page["has_more"], false);
  EXPECT_EQ(call("GET", "/v1/batches?limit=0").status, 400);
  EXPECT_EQ(call("GET", "/v1/batches?limit=x").status, 400);

  for (const std::string& id : ids) {
    HttpResult c = call("POST", "/v1/batches/" + id + "/cancel");
    ASSERT_EQ(c.status, 200) << c.body;
    EXPECT_TRUE(c.json()["status"] == "cancelling" || c.json()["status"] == "cancelled") << c.body;
  }
  for (const std::string& id : ids) {
    const json c = wait_batch(id, "cancelled");
    EXPECT_TRUE(c["cancelling_at"].is_number());
    EXPECT_TRUE(c["cancelled_at"].is_number());
    EXPECT_EQ(c["request_counts"]["completed"], 0);
    EXPECT_TRUE(c["output_file_id"].is_null());
  }
}

// DELETE /v1/files/{id}: an input file once no unfinished batch reads it (the finished batches keep
// their results), an output or error file with its results; a deleted file is unknown everywhere.
TEST_F(BatchApiTest, FilesAreDeletedOnceNoUnfinishedBatchReadsThem) {
  bool hold = true;
  std::mutex mu;
  backend_->script = [&](const TextRequest&) {
    std::lock_guard<std::mutex> lock(mu);
    http::testing::Script s;
    s.until_cancelled = hold;  // the first batch's lines run until it is cancelled
    s.finish.finish_reason = "stop";
    if (!hold) {
      TextDelta d;
      d.content = "ok";
      s.deltas.push_back(d);
    }
    return s;
  };
  const std::string held = upload(request_line("a") + "\n")["id"];
  const std::string running = call("POST", "/v1/batches", json{{"input_file_id", held}, {"endpoint", kChatEndpoint}, {"completion_window", "24h"}}.dump())
                                  .json()["id"];
  HttpResult r = call("DELETE", "/v1/files/" + held);
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("is the input of batch " + running + ", which is in_progress"), std::string::npos) << r.body;
  ASSERT_EQ(call("POST", "/v1/batches/" + running + "/cancel").status, 200);
  wait_batch(running, "cancelled");
  {
    std::lock_guard<std::mutex> lock(mu);
    hold = false;
  }

  const std::string input = upload(request_line("b") + "\n" + "{broken\n")["id"];
  const std::string done_id = call("POST", "/v1/batches", json{{"input_file_id", input}, {"endpoint", kChatEndpoint}, {"completion_window", "24h"}}.dump())
                                  .json()["id"];
  const json done = wait_batch(done_id, "completed");
  const std::string output = done["output_file_id"], errors = done["error_file_id"];
  for (const std::string& id : {output, held, input}) {
    r = call("DELETE", "/v1/files/" + id);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.json(), (json{{"id", id}, {"object", "file"}, {"deleted", true}}));
    EXPECT_EQ(call("GET", "/v1/files/" + id).status, 404);
    EXPECT_EQ(call("GET", "/v1/files/" + id + "/content").status, 404);
    EXPECT_EQ(call("DELETE", "/v1/files/" + id).status, 404);
  }
  // The error file and the batches are untouched; a deleted input cannot start a batch.
  EXPECT_NE(call("GET", "/v1/files/" + errors + "/content").body.find("\"line\":2"), std::string::npos);
  EXPECT_EQ(call("GET", "/v1/batches/" + done_id).json()["input_file_id"], input);
  EXPECT_EQ(call("GET", "/v1/batches/" + done_id).json()["request_counts"]["completed"], 1);
  const json list = call("GET", "/v1/files").json();
  ASSERT_EQ(list["data"].size(), 1u);
  EXPECT_EQ(list["data"][0]["id"], errors);
  EXPECT_EQ(call("POST", "/v1/batches", json{{"input_file_id", input}, {"endpoint", kChatEndpoint}, {"completion_window", "24h"}}.dump())
                .status,
            404);
  EXPECT_EQ(call("DELETE", "/v1/files/file-nope").status, 404);
  // The space is given back: no upload content, no copy of an input line, no output result is left.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "jobs.sqlite3").c_str(), &db), SQLITE_OK);
  for (const char* q : {"SELECT count(*) FROM files WHERE content IS NOT NULL", "SELECT count(*) FROM lines WHERE text != ''",
                        "SELECT count(*) FROM results WHERE kind = 0"}) {
    sqlite3_stmt* st = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, q, -1, &st, nullptr), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    EXPECT_EQ(sqlite3_column_int64(st, 0), 0) << q;
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
}

TEST(BatchApiDisabled, EveryRouteSaysHowToTurnJobsOn) {
  BatchApi api(nullptr);
  for (auto call : {+[](BatchApi& a) { a.files("GET", "/v1/files", ""); }, +[](BatchApi& a) { a.batches("POST", "/v1/batches", "{}"); }}) {
    try {
      call(api);
      ADD_FAILURE() << "no error";
    } catch (const http::ApiException& e) {
      EXPECT_EQ(e.error().status, 400);
      EXPECT_EQ(e.error().code, "batch_jobs_disabled");
      EXPECT_NE(e.error().message.find("--state-dir"), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace shardlm::jobs
