// The job runner: over a scripted text backend (batch priority, bounded lines in flight, seeds, refused
// lines, retries, cancel, a stop with lines in flight that run again after a restart) and over the real
// text service on the tiny golden model (each result equals the same request sent directly).
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <random>

#include <nlohmann/json.hpp>
#include <sqlite3.h>

#include "coordinator/http/openai_request.h"
#include "coordinator/http/openai_response.h"
#include "coordinator/jobs/batch_file.h"
#include "coordinator/jobs/job_runner.h"
#include "coordinator/jobs/job_store.h"
#include "coordinator/scheduler.h"
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

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = fs::temp_directory_path() / ("shardlm_runner_test_" + std::to_string(::getpid()) + "_" + std::to_string(rd()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string str() const { return path_.string(); }

 private:
  fs::path path_;
};

json chat_body(int i, const std::string& model = "tiny") {
  return {{"model", model},
          {"messages", json::array({{{"role", "user"}, {"content", "Question " + std::to_string(i) + " about the sea?"}}})},
          {"max_tokens", 4},
          {"temperature", 0}};
}

std::string line(const std::string& custom_id, const json& body, const std::string& url = kChatEndpoint) {
  return json{{"custom_id", custom_id}, {"method", "POST"}, {"url", url}, {"body", body}}.dump();
}

std::string chat_file(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += line("q" + std::to_string(i), chat_body(i)) + "\n";
  return s;
}

JobRecord create(JobStore& store, const std::string& content, const std::string& endpoint = kChatEndpoint) {
  return store.create_job(store.add_file("in.jsonl", "batch", content).id, endpoint, "24h", json::object());
}

bool wait_state(JobStore& store, const std::string& id, JobState state, double timeout_s = 20) {
  return ScriptedBackend::eventually([&] { return store.job(id)->state == state; }, timeout_s);
}

std::vector<json> results(JobStore& store, const std::string& id, std::optional<ResultKind> kind) {
  std::string text;
  int64_t last = 0;
  bool more = false;
  store.read_results(id, kind, 0, SIZE_MAX, text, &last, &more);
  std::vector<json> out;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t end = text.find('\n', pos);
    out.push_back(json::parse(text.substr(pos, end - pos)));
    pos = end + 1;
  }
  return out;
}

// One delta of `content`, then "length" after `pause_ms`.
Script answer(const std::string& content, int pause_ms, int completion_tokens) {
  Script s;
  TextDelta d;
  d.content = content;
  s.deltas.push_back(d);
  s.pause_ms = pause_ms;
  s.finish.finish_reason = "length";
  s.finish.prompt_tokens = 5;
  s.finish.completion_tokens = completion_tokens;
  return s;
}

RunnerOptions fast(int inflight = 4) {
  RunnerOptions o;
  o.max_inflight = o.max_inflight_per_job = inflight;
  o.retry_delay_s = 0.02;
  o.poll_s = 0.05;
  return o;
}

TEST(JobRunner, RunsEveryLineOnceAtBatchPriorityWithBoundedConcurrency) {
  TempDir dir;
  JobStore store(dir.str());
  ScriptedBackend backend;
  std::atomic<int> most_in_flight{0};
  backend.before_submit = [&](const TextRequest&) {
    const int now = static_cast<int>(backend.requests().size()) + 1 - backend.finished();
    most_in_flight = std::max(most_in_flight.load(), now);
  };
  backend.script = [](const TextRequest& r) { return answer("answer to " + r.messages[0]["content"].get<std::string>(), 2, 4); };
  JobRunner runner(store, backend, fast(3));
  runner.start();
  const JobRecord j = create(store, chat_file(20));
  runner.wake();
  ASSERT_TRUE(wait_state(store, j.id, JobState::kCompleted));
  EXPECT_LE(most_in_flight.load(), 3);
  const std::vector<TextRequest> requests = backend.requests();
  ASSERT_EQ(requests.size(), 20u);
  std::set<uint64_t> seeds;
  for (const TextRequest& r : requests) {
    EXPECT_EQ(r.priority, Priority::kBatch);
    EXPECT_TRUE(r.chat);
    EXPECT_EQ(r.max_tokens, 4);
    seeds.insert(r.sampling.seed);
  }
  EXPECT_EQ(seeds.size(), 20u);  // a seed per line (derived from the job and line)
  const std::vector<json> out = results(store, j.id, ResultKind::kOutput);
  ASSERT_EQ(out.size(), 20u);
  for (size_t i = 0; i < out.size(); ++i) {
    const json& body = out[i]["response"]["body"];
    EXPECT_EQ(out[i]["custom_id"], "q" + std::to_string(i));
    EXPECT_EQ(out[i]["response"]["status_code"], 200);
    EXPECT_EQ(body["object"], "chat.completion");
    EXPECT_EQ(body["model"], "tiny");
    EXPECT_EQ(body["choices"][0]["message"]["content"], "answer to Question " + std::to_string(i) + " about the sea?");
    EXPECT_EQ(body["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(body["usage"]["total_tokens"], 9);
  }
  // The counter follows the commit that completed the job.
  EXPECT_TRUE(ScriptedBackend::eventually([&] { return runner.committed() == 20; })) << runner.committed();
  EXPECT_EQ(runner.inflight(), 0);
}

// Results the store cannot take (here: another connection holds the database's write lock past the
// busy timeout, as a full disk refuses them) are kept and saved on a later round: the job completes
// without a restart, each line once (its lines stayed "running" for ever, their results dropped).
// Another connection that holds the store's write lock (until COMMIT and sqlite3_close): the store's
// commits fail once its busy timeout has passed. Waits for a commit of the runner in progress.
sqlite3* lock_database(const JobStore& store) {
  sqlite3* other = nullptr;
  if (sqlite3_open(store.database_path().c_str(), &other) != SQLITE_OK) return nullptr;
  sqlite3_busy_timeout(other, 10000);
  if (sqlite3_exec(other, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr) != SQLITE_OK) {
    sqlite3_close(other);
    return nullptr;
  }
  return other;
}

TEST(JobRunner, ResultsTheStoreRefusesAreSavedLater) {
  TempDir dir;
  JobStore store(dir.str());
  ScriptedBackend backend;
  backend.script = [](const TextRequest&) { return answer("ok", 300, 1); };
  JobRunner runner(store, backend, fast(6));
  runner.start();
  const JobRecord j = create(store, chat_file(6));
  runner.wake();
  ASSERT_TRUE(ScriptedBackend::eventually([&] { return backend.requests().size() == 6u; }));
  sqlite3* other = lock_database(store);
  ASSERT_NE(other, nullptr);
  // Past the store's busy timeout (5 s) once the lines have finished.
  std::this_thread::sleep_for(std::chrono::milliseconds(6500));
  EXPECT_EQ(store.job(j.id)->state, JobState::kInProgress);
  ASSERT_EQ(sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(other);
  ASSERT_TRUE(wait_state(store, j.id, JobState::kCompleted, 30));
  const std::vector<json> out = results(store, j.id, ResultKind::kOutput);
  ASSERT_EQ(out.size(), 6u);
  std::set<std::string> ids;
  for (const json& o : out) ids.insert(o["custom_id"].get<std::string>());
  EXPECT_EQ(ids.size(), 6u);
  EXPECT_EQ(backend.requests().size(), 6u);  // nothing ran twice
  EXPECT_TRUE(ScriptedBackend::eventually([&] { return runner.committed() == 6; })) << runner.committed();
}

// A stop while the store refuses every commit (a full disk, a locked database) ends within its
// attempts; the lines whose results were lost run again at the next start, each result saved once.
TEST(JobRunner, StopsWhileTheStoreRefusesCommitsAndTheLinesRunAgain) {
  TempDir dir;
  JobStore store(dir.str());
  ScriptedBackend backend;
  backend.script = [](const TextRequest&) { return answer("ok", 300, 1); };
  auto runner = std::make_unique<JobRunner>(store, backend, fast(4));
  runner->start();
  const JobRecord j = create(store, chat_file(4));
  runner->wake();
  ASSERT_TRUE(ScriptedBackend::eventually([&] { return backend.requests().size() == 4u; }));
  sqlite3* other = lock_database(store);
  ASSERT_NE(other, nullptr);
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));  // the answers (300 ms) are in, unsaved
  const auto t0 = std::chrono::steady_clock::now();
  runner.reset();  // stop(): each attempt waits out the store's busy timeout (5 s), then gives up
  const double stop_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(stop_s, 20.0);
  ASSERT_EQ(sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(other);
  JobRunner again(store, backend, fast(4));
  again.start();
  again.wake();
  ASSERT_TRUE(wait_state(store, j.id, JobState::kCompleted, 30));
  std::set<std::string> ids;
  for (const json& o : results(store, j.id, ResultKind::kOutput)) ids.insert(o["custom_id"].get<std::string>());
  EXPECT_EQ(ids.size(), 4u);
  EXPECT_EQ(results(store, j.id, ResultKind::kOutput).size(), 4u);
}

TEST(JobRunner, RefusedLinesGetErrorResultsAndTheRestRuns) {
  TempDir dir;
  JobStore store(dir.str());
  ScriptedBackend backend;
  JobRunner runner(store, backend, fast());
  runner.start();
  json seeded = chat_body(1);
  seeded["seed"] = 1234;
  json streamed = chat_body(2);
  streamed["stream"] = true;
  json bad = chat_body(3);
  bad["temperature"] = -1;
  const std::string content = line("ok", chat_body(0)) + "\n" + line("seeded", seeded) + "\n" + line("stream", streamed) + "\n" +
                              line("bad", bad) + "\n" + line("model", chat_body(4, "other")) + "\n" +
                              line("prompt", json{{"model", "tiny"}, {"prompt", "Once"}}, kCompletionsEndpoint) + "\n";
  const JobRecord j = create(store, content, "");
  runner.wake();
  ASSERT_TRUE(wait_state(store, j.id, JobState::kCompleted));
  const JobRecord done = *store.job(j.id);
  EXPECT_EQ(done.completed, 3);
  EXPECT_EQ(done.failed, 3);
  std::map<std::string, json> errors;
  for (const json& e : results(store, j.id, ResultKind::kError)) errors[e["custom_id"]] = e;
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_EQ(errors["stream"]["response"]["status_code"], 400);
  EXPECT_EQ(errors["stream"]["response"]["body"]["error"]["param"], "stream");
  EXPECT_EQ(errors["stream"]["error"]["line"], 3);
  EXPECT_EQ(errors["bad"]["response"]["body"]["error"]["param"], "temperature");
  EXPECT_EQ(errors["bad"]["error"]["message"].get<std::string>().rfind("line 4: ", 0), 0u);
  EXPECT_EQ(errors["model"]["response"]["status_code"], 404);
  EXPECT_EQ(errors["model"]["error"]["code"], "model_not_found");
  const std::vector<TextRequest> requests = backend.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[1].sampling.seed, 1234u);  // a given seed is kept
  EXPECT_FALSE(requests[2].chat);
  EXPECT_EQ(requests[2].prompt, "Once");
  const std::vector<json> out = results(store, j.id, ResultKind::kOutput);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[2]["response"]["body"]["object"], "text_completion");
  EXPECT_EQ(out[2]["response"]["body"]["choices"][0]["text"], "ok");
}

TEST(JobRunner, QueueFullIsRetriedAndFailedGenerationsAreRetriedThenReported) {
  TempDir dir;
  JobStore store(dir.str());
  ScriptedBackend backend;
  std::atomic<int> refusals{3};
  backend.before_submit = [&](const TextRequest&) {
    if (refusals.fetch_sub(1) > 0) fail_request(RequestErrorCode::kQueueFull, "the request queue is full");
  };
  std::atomic<int> attempts_of_fail{0};
  backend.script = [&](const TextRequest& r) {
    Script s;
    TextDelta d;
    d.content = "x";
    s.deltas.push_back(d);
    const bool fails = r.messages[0]["content"].get<std::string>().find("Question 1 ") != std::string::npos;
    if (fails) ++attempts_of_fail;
    s.finish.finish_reason = fails ? "error" : "stop";
    s.finish.error = fails ? "worker 2 is gone" : "";
    return s;
  };
  RunnerOptions o = fast();
  o.max_attempts = 3;
  JobRunner runner(store, backend, o);
  runner.start();
  const JobRecord j = create(store, chat_file(3));
  runner.wake();
  ASSERT_TRUE(wait_state(store, j.id, JobState::kCompleted));
  EXPECT_EQ(attempts_of_fail.load(), 3);
  const JobRecord done = *store.job(j.id);
  EXPECT_EQ(done.completed, 2);
  EXPECT_EQ(done.failed, 1);
  const std::vector<json> errors = results(store, j.id, ResultKind::kError);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0]["custom_id"], "q1");
  EXPECT_EQ(errors[0]["response"]["status_code"], 500);
  EXPECT_EQ(errors[0]["error"]["code"], "generation_failed");
  EXPECT_NE(errors[0]["error"]["message"].get<std::string>().find("worker 2 is gone"), std::string::npos);
}

TEST(JobRunner, CancelStopsRunningLinesAndKeepsFinishedOnes) {
  TempDir dir;
  JobStore store(dir.str());
  ScriptedBackend backend;
  std::atomic<int> submitted{0};
  backend.script = [&](const TextRequest&) {
    Script s;
    TextDelta d;
    d.content = "y";
    s.deltas.push_back(d);
    s.finish.finish_reason = "stop";
    s.until_cancelled = ++submitted > 2;  // the first two finish, the rest wait for a cancel
    return s;
  };
  JobRunner runner(store, backend, fast(2));
  runner.start();
  const JobRecord j = create(store, chat_file(10));
  runner.wake();
  ASSERT_TRUE(ScriptedBackend::eventually([&] { return store.job(j.id)->completed == 2 && runner.inflight() == 2; }));
  store.request_cancel(j.id);
  runner.wake();
  ASSERT_TRUE(wait_state(store, j.id, JobState::kCancelled));
  EXPECT_EQ(backend.cancelled().size(), 2u);
  const JobRecord c = *store.job(j.id);
  EXPECT_EQ(c.completed, 2);
  EXPECT_EQ(c.running, 0);
  EXPECT_EQ(results(store, j.id, ResultKind::kOutput).size(), 2u);
  EXPECT_EQ(backend.requests().size(), 4u);  // no line started after the cancel
}

TEST(JobRunner, LinesInFlightAtAStopRunAgainAfterARestart) {
  TempDir dir;
  std::string id;
  ScriptedBackend backend;
  std::atomic<bool> hang{true};
  std::atomic<int> done_lines{0};
  backend.script = [&](const TextRequest& r) {
    Script s;
    TextDelta d;
    d.content = r.messages[0]["content"];
    s.deltas.push_back(d);
    s.finish.finish_reason = "stop";
    s.until_cancelled = hang && ++done_lines > 5;
    return s;
  };
  {
    JobStore store(dir.str());
    JobRunner runner(store, backend, fast(3));
    runner.start();
    id = create(store, chat_file(12)).id;
    runner.wake();
    ASSERT_TRUE(ScriptedBackend::eventually([&] { return store.job(id)->completed == 5 && runner.inflight() == 3; }));
    runner.stop();  // the 3 lines in flight are cut short: they have no result and run again
    const JobRecord cut = *store.job(id);
    EXPECT_EQ(cut.completed, 5);
    EXPECT_EQ(cut.state, JobState::kInProgress);
  }
  hang = false;
  JobStore store(dir.str());
  JobRunner runner(store, backend, fast(3));
  runner.start();  // recover(): the running lines are pending again
  ASSERT_TRUE(wait_state(store, id, JobState::kCompleted));
  const std::vector<json> out = results(store, id, ResultKind::kOutput);
  ASSERT_EQ(out.size(), 12u);
  std::set<std::string> ids;
  for (const json& r : out) ids.insert(r["custom_id"]);
  EXPECT_EQ(ids.size(), 12u);
  EXPECT_EQ(store.job(id)->completed, 12);
}

// The real text service on the tiny golden model: every line's result is what the same request gives
// when sent directly.
TEST(JobRunner, ResultsEqualDirectRequestsOnTheRealModel) {
  const std::string model_dir = std::string(SHARDLM_TEST_DATA) + "/dense";
  EngineOptions eo;
  eo.model_dir = model_dir;
  eo.threads = 2;
  eo.max_context = 256;
  eo.max_sequences = 4;
  eo.kv_tokens = 1024;
  std::unique_ptr<StepEngine> engine = open_engine(eo);
  const Tokenizer tokenizer = Tokenizer::load(model_dir);
  Scheduler scheduler(*engine, SchedulerOptions{});
  TextService service(scheduler, tokenizer, engine->config(), "tiny");
  std::unique_ptr<http::TextBackend> backend = http::text_service_backend(service);

  TempDir dir;
  JobStore store(dir.str());
  JobRunner runner(store, *backend, fast(3));
  runner.start();
  std::string content;
  for (int i = 0; i < 8; ++i) {
    content += line("c" + std::to_string(i), chat_body(i)) + "\n";
    content += line("p" + std::to_string(i), json{{"model", "tiny"}, {"prompt", "The sea " + std::to_string(i)}, {"max_tokens", 5},
                                                  {"temperature", 0}}, kCompletionsEndpoint) + "\n";
  }
  const JobRecord j = create(store, content, "");
  runner.wake();
  ASSERT_TRUE(wait_state(store, j.id, JobState::kCompleted, 120));
  const std::vector<json> out = results(store, j.id, ResultKind::kOutput);
  ASSERT_EQ(out.size(), 16u);
  ASSERT_EQ(store.job(j.id)->failed, 0);

  // The same requests, directly (as POST /v1/... runs them: parsed by the same parser).
  struct Collect : TextObserver {
    std::mutex m;
    std::condition_variable cv;
    std::string text;
    TextFinish finish;
    bool done = false;
    void on_delta(const TextDelta& d) override {
      std::lock_guard l(m);
      text += d.content;
    }
    void on_finish(const TextFinish& f) override {
      std::lock_guard l(m);
      finish = f;
      done = true;
      cv.notify_all();
    }
  };
  for (const json& r : out) {
    const std::string custom_id = r["custom_id"];
    const bool chat = custom_id[0] == 'c';
    const int i = std::stoi(custom_id.substr(1));
    const json body = chat ? chat_body(i) : json{{"model", "tiny"}, {"prompt", "The sea " + std::to_string(i)}, {"max_tokens", 5}, {"temperature", 0}};
    http::OpenAIRequest req = chat ? http::parse_chat_request(body) : http::parse_completion_request(body);
    auto c = std::make_shared<Collect>();
    service.submit(req.text, c);
    std::unique_lock l(c->m);
    ASSERT_TRUE(c->cv.wait_for(l, std::chrono::seconds(60), [&] { return c->done; }));
    const json& choice = r["response"]["body"]["choices"][0];
    EXPECT_EQ(chat ? choice["message"]["content"].get<std::string>() : choice["text"].get<std::string>(),
              json::parse(http::dump_json(c->text)).get<std::string>())  // invalid UTF-8 replaced as in responses
        << custom_id;
    EXPECT_EQ(choice["finish_reason"], c->finish.finish_reason) << custom_id;
    EXPECT_EQ(r["response"]["body"]["usage"]["completion_tokens"], c->finish.completion_tokens) << custom_id;
  }
  runner.stop();
  scheduler.stop(false);
}

}  // namespace
}  // namespace shardlm::jobs
