// The batch-job messages of the TCP protocol end to end: a TcpServer (over the real text service on the
// tiny golden model) with the job handler, driven by the blocking Client: submit, status, list, cancel,
// results streamed in several chunks and resumed with after_line, errors, and a server without jobs.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include <nlohmann/json.hpp>

#include "coordinator/jobs/batch_file.h"
#include "coordinator/jobs/job_protocol.h"
#include "coordinator/jobs/job_service.h"
#include "coordinator/scheduler.h"
#include "coordinator/tcp/client.h"
#include "coordinator/tcp/server.h"
#include "coordinator/text_service.h"
#include "engine/engine.h"
#include "model/tokenizer.h"
#include "tests/unit/coordinator/http/http_test_support.h"

namespace shardlm::jobs {
namespace {

using http::testing::Script;
using http::testing::ScriptedBackend;
using nlohmann::json;
namespace fs = std::filesystem;

std::string request_line(int i, const std::string& url = kCompletionsEndpoint) {
  return json{{"custom_id", "r" + std::to_string(i)},
              {"method", "POST"},
              {"url", url},
              {"body", {{"model", "tiny"}, {"prompt", "p" + std::to_string(i)}, {"max_tokens", 3}}}}
      .dump();
}

std::string file_of(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += request_line(i) + "\n";
  return s;
}

class JobProtocolTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string dir = std::string(SHARDLM_TEST_DATA) + "/dense";
    EngineOptions eo;
    eo.model_dir = dir;
    eo.threads = 1;
    eo.max_context = 128;
    eo.max_sequences = 2;
    eo.kv_tokens = 256;
    engine_ = open_engine(eo).release();
    tokenizer_ = new Tokenizer(Tokenizer::load(dir));
    scheduler_ = new Scheduler(*engine_, SchedulerOptions{});
    service_ = new TextService(*scheduler_, *tokenizer_, engine_->config(), "tiny");
  }
  static void TearDownTestSuite() {
    scheduler_->stop(false);
    delete service_;
    delete scheduler_;
    delete tokenizer_;
    delete engine_;
  }

  void SetUp() override {
    std::random_device rd;
    dir_ = fs::temp_directory_path() / ("shardlm_job_protocol_" + std::to_string(rd()));
    // Job lines run on a scripted backend with long answers (several result chunks per job); the
    // server's own generate requests use the real text service.
    backend_ = std::make_shared<ScriptedBackend>();
    backend_->script = [](const TextRequest& r) {
      Script s;
      TextDelta d;
      d.content = std::string(6000, 'x') + r.prompt;
      s.deltas.push_back(d);
      s.finish.finish_reason = "length";
      return s;
    };
    JobServiceOptions o;
    o.runner.poll_s = 0.05;
    jobs_ = std::make_unique<JobService>(dir_.string(), backend_, o);
    jobs_->start();
    tcp::TcpServerOptions to;
    to.port = 0;
    server_ = std::make_unique<tcp::TcpServer>(*service_, to);
    server_->set_job_handler(std::make_shared<ProtocolJobHandler>(*jobs_));
    server_->start();
    client_.connect("127.0.0.1", server_->port());
  }
  void TearDown() override {
    client_.close();
    server_->stop();
    jobs_->stop();
    jobs_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  client::JobInfo wait_done(const std::string& id) {
    client::JobInfo j;
    ScriptedBackend::eventually([&] {
      j = client_.job_status(id);
      return j.state() == client::JOB_COMPLETED || j.state() == client::JOB_CANCELLED;
    });
    return j;
  }

  static client::ErrorCode error_of(const std::function<void()>& f) {
    try {
      f();
    } catch (const tcp::ServerError& e) {
      return e.code();
    }
    ADD_FAILURE() << "no ServerError";
    return client::ERROR_CODE_UNSPECIFIED;
  }

  static StepEngine* engine_;
  static Tokenizer* tokenizer_;
  static Scheduler* scheduler_;
  static TextService* service_;
  fs::path dir_;
  std::shared_ptr<ScriptedBackend> backend_;
  std::unique_ptr<JobService> jobs_;
  std::unique_ptr<tcp::TcpServer> server_;
  tcp::Client client_;
};

StepEngine* JobProtocolTest::engine_ = nullptr;
Tokenizer* JobProtocolTest::tokenizer_ = nullptr;
Scheduler* JobProtocolTest::scheduler_ = nullptr;
TextService* JobProtocolTest::service_ = nullptr;

TEST_F(JobProtocolTest, SubmitStatusListAndStreamedResults) {
  EXPECT_GE(client_.welcome().protocol_minor(), 1u);
  client::JobSubmitRequest r;
  r.set_jsonl(file_of(120) + "{oops\n");
  r.set_endpoint(kCompletionsEndpoint);
  r.set_filename("mine.jsonl");
  (*r.mutable_metadata())["who"] = "test";
  const client::JobInfo submitted = client_.job_submit(r);
  EXPECT_EQ(submitted.id().rfind("batch_", 0), 0u);
  EXPECT_EQ(submitted.total(), 121);
  EXPECT_EQ(submitted.failed(), 1);  // the malformed line, at once
  EXPECT_EQ(submitted.filename(), "mine.jsonl");
  EXPECT_EQ(submitted.metadata().at("who"), "test");

  const client::JobInfo done = wait_done(submitted.id());
  EXPECT_EQ(done.state(), client::JOB_COMPLETED);
  EXPECT_EQ(done.completed(), 120);
  EXPECT_EQ(done.failed(), 1);
  EXPECT_GT(done.finished_at(), 0);
  EXPECT_FALSE(done.output_file_id().empty());
  EXPECT_FALSE(done.error_file_id().empty());

  // About 6 KB per result: the 120 results come in several chunks, in line order.
  client::JobResultsRequest q;
  q.set_job_id(submitted.id());
  std::string all;
  int chunks = 0;
  const int64_t lines = client_.job_results(q, [&](const client::JobResultChunk& c) {
    ++chunks;
    all += c.jsonl();
  });
  EXPECT_EQ(lines, 120);
  EXPECT_GE(chunks, 3);
  std::vector<std::string> ids;
  for (size_t pos = 0; pos < all.size();) {
    const size_t end = all.find('\n', pos);
    ids.push_back(json::parse(all.substr(pos, end - pos))["custom_id"]);
    pos = end + 1;
  }
  ASSERT_EQ(ids.size(), 120u);
  for (int i = 0; i < 120; ++i) EXPECT_EQ(ids[static_cast<size_t>(i)], "r" + std::to_string(i));
  // Resume after line 100; the errors alone; everything.
  q.set_after_line(100);
  EXPECT_EQ(client_.job_results(q, nullptr), 20);
  q.set_after_line(0);
  q.set_kind(client::JOB_RESULTS_ERRORS);
  std::string errors;
  EXPECT_EQ(client_.job_results(q, [&](const client::JobResultChunk& c) { errors += c.jsonl(); }), 1);
  EXPECT_NE(errors.find("\"line\":121"), std::string::npos) << errors;
  q.set_kind(client::JOB_RESULTS_ALL);
  EXPECT_EQ(client_.job_results(q, nullptr), 121);

  const client::JobList list = client_.job_list();
  ASSERT_EQ(list.jobs_size(), 1);
  EXPECT_EQ(list.jobs(0).id(), submitted.id());
  EXPECT_FALSE(list.has_more());
  // A generate request on the same connection still works.
  tcp::RequestOptions o;
  o.max_tokens = 2;
  o.temperature = 0.0f;
  EXPECT_EQ(client_.generate("Hello", o, nullptr).usage().completion_tokens(), 2);
}

TEST_F(JobProtocolTest, CancelAndErrors) {
  backend_->script = [](const TextRequest&) {
    Script s;
    s.until_cancelled = true;
    s.finish.finish_reason = "stop";
    return s;
  };
  client::JobSubmitRequest r;
  r.set_jsonl(file_of(5));
  const client::JobInfo j = client_.job_submit(r);
  EXPECT_TRUE(j.endpoint().empty());
  const client::JobInfo c = client_.job_cancel(j.id());
  EXPECT_TRUE(c.state() == client::JOB_CANCELLING || c.state() == client::JOB_CANCELLED);
  EXPECT_EQ(wait_done(j.id()).state(), client::JOB_CANCELLED);
  EXPECT_EQ(error_of([&] { client_.job_cancel(j.id()); }), client::ERROR_INVALID_REQUEST);

  EXPECT_EQ(error_of([&] { client_.job_status("batch_nope"); }), client::ERROR_NOT_FOUND);
  EXPECT_EQ(error_of([&] { client_.job_status(""); }), client::ERROR_INVALID_REQUEST);
  client::JobResultsRequest q;
  q.set_job_id("batch_nope");
  EXPECT_EQ(error_of([&] { client_.job_results(q, nullptr); }), client::ERROR_NOT_FOUND);
  client::JobSubmitRequest bad;
  bad.set_jsonl("just text\n");
  EXPECT_EQ(error_of([&] { client_.job_submit(bad); }), client::ERROR_INVALID_REQUEST);
  bad.set_jsonl(file_of(1));
  bad.set_endpoint("/v1/embeddings");
  EXPECT_EQ(error_of([&] { client_.job_submit(bad); }), client::ERROR_INVALID_REQUEST);
  // The connection survived every refusal.
  EXPECT_EQ(client_.job_list().jobs_size(), 1);
}

TEST_F(JobProtocolTest, AResultStreamCanBeCancelled) {
  client::JobSubmitRequest r;
  r.set_jsonl(file_of(60));
  const client::JobInfo j = client_.job_submit(r);
  ASSERT_EQ(wait_done(j.id()).state(), client::JOB_COMPLETED);
  client::ClientMessage m;
  m.set_request_id(777);
  m.mutable_job_results()->set_job_id(j.id());
  client_.send(m);
  client_.send_cancel(777);
  int64_t lines = 0;
  for (;;) {
    std::optional<client::ServerMessage> reply = client_.receive_for(777, 20);
    ASSERT_TRUE(reply.has_value());
    ASSERT_TRUE(reply->has_job_results()) << reply->DebugString();
    lines += reply->job_results().lines();
    if (reply->job_results().last()) break;
  }
  EXPECT_LE(lines, 60);
  EXPECT_EQ(client_.job_status(j.id()).completed(), 60);
}

TEST(JobProtocolOff, AServerWithoutJobsSaysSo) {
  const std::string dir = std::string(SHARDLM_TEST_DATA) + "/dense";
  EngineOptions eo;
  eo.model_dir = dir;
  eo.threads = 1;
  eo.max_context = 64;
  eo.max_sequences = 1;
  std::unique_ptr<StepEngine> engine = open_engine(eo);
  const Tokenizer tokenizer = Tokenizer::load(dir);
  Scheduler scheduler(*engine, SchedulerOptions{});
  TextService service(scheduler, tokenizer, engine->config(), "tiny");
  tcp::TcpServerOptions to;
  to.port = 0;
  tcp::TcpServer server(service, to);
  server.start();
  tcp::Client c;
  c.connect("127.0.0.1", server.port());
  try {
    c.job_status("batch_x");
    ADD_FAILURE() << "no error";
  } catch (const tcp::ServerError& e) {
    EXPECT_EQ(e.code(), client::ERROR_UNAVAILABLE);
    EXPECT_NE(e.message().find("--state-dir"), std::string::npos) << e.message();
  }
  EXPECT_TRUE(c.connected());
  server.stop();
  scheduler.stop(false);
}

}  // namespace
}  // namespace shardlm::jobs
