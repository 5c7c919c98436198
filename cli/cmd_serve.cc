// `shardlm serve`: the cluster's front door on rank 0 — the TCP client protocol, the OpenAI-compatible
// HTTP API and Prometheus metrics over one scheduler — with the model on the worker ranks of the MPI
// job (or in this process when started alone). Runs until SIGTERM / SIGINT, then stops taking
// requests, lets running ones finish for a grace period, cancels the rest and exits 0. With
// --tls-cert / --tls-key both client-facing servers speak TLS (HTTPS; the protocol's frames inside
// TLS); --max-connections, --max-body-bytes, --max-prompt-tokens and --rate-limit bound what clients
// may ask (docs/operations.md).
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>

#include <spdlog/spdlog.h>

#include "cli/command.h"
#include "cli/local_model.h"
#include "common/error.h"
#include "common/rate_limiter.h"
#include "common/text_format.h"
#include "common/tls.h"
#include "common/version.h"
#include "coordinator/http/http_server.h"
#include "coordinator/jobs/batch_api.h"
#include "coordinator/jobs/job_protocol.h"
#include "coordinator/jobs/job_service.h"
#include "coordinator/scheduler.h"
#include "coordinator/tcp/server.h"
#include "coordinator/text_service.h"
#include "model/generation_defaults.h"
#include "model/tokenizer.h"
#include "proto/step_message.h"
#include "telemetry/metrics.h"

namespace shardlm::cli {
namespace {

struct ServeArgs {
  LocalModelOptions model;
  std::string host = "127.0.0.1";
  int port = 7070;
  int http_port = 8000;
  int metrics_port = 9090;
  std::string metrics_host;
  std::string api_key_file;
  std::string state_dir;
  std::string model_name;
  int64_t max_context = 0;
  int max_sequences = 16;
  int max_step_tokens = 512;
  int max_waiting = 256;
  int batch_sequences = 0;
  int http_threads = 2;
  double grace_s = 30;
  std::string tls_cert;
  std::string tls_key;
  int max_connections = 0;
  size_t max_body_bytes = size_t{8} << 20;
  int64_t max_prompt_tokens = 0;
  double rate_limit = 0;
  double worker_timeout = 120;
  std::string generation_config = "auto";
};

std::vector<std::string> read_api_keys(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("--api-key-file {}: cannot be read", path);
  std::vector<std::string> keys;
  std::string line;
  while (std::getline(in, line)) {
    const size_t b = line.find_first_not_of(" \t\r");
    if (b == std::string::npos || line[b] == '#') continue;
    const size_t e = line.find_last_not_of(" \t\r");
    keys.push_back(line.substr(b, e - b + 1));
  }
  if (keys.empty()) fail("--api-key-file {}: no keys in it (one per line)", path);
  return keys;
}

telemetry::WorkerStepRecord to_record(const WorkerStepFigures& f) {
  telemetry::WorkerStepRecord r;
  r.compute_s = f.compute_s;
  r.comm_s = f.comm_s;
  r.allreduce_s = f.comm_s;
  r.allreduce_count = f.allreduce_count;
  r.allreduce_bytes = f.allreduce_bytes;
  r.kv_full_used = f.kv_full_used;
  r.kv_full_free = f.kv_full_free;
  r.kv_sliding_used = f.kv_sliding_used;
  r.kv_sliding_free = f.kv_sliding_free;
  r.expert_tokens = f.expert_tokens;
  r.rss_bytes = f.rss_bytes;
  r.weight_bytes = f.weight_bytes;
  return r;
}

std::string finish_label(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kCancelled: return "abort";
    case FinishReason::kError: return "error";
  }
  return "error";
}

// What only the coordinator reads (workers need none of it on their file system), read before the
// model loads so that a bad path or key fails the start at once.
struct CoordinatorFiles {
  std::vector<std::string> api_keys;
  std::shared_ptr<boost::asio::ssl::context> tls;
  GenerationDefaults generation_defaults;
  std::optional<Tokenizer> tokenizer;  // the model's (a missing or broken tokenizer.json stops the start before any weight is read)
};

CoordinatorFiles read_coordinator_files(const ServeArgs& a) {
  CoordinatorFiles f;
  if (!a.api_key_file.empty()) f.api_keys = read_api_keys(a.api_key_file);
  if (!a.tls_cert.empty()) f.tls = tls::server_context(a.tls_cert, a.tls_key);
  f.generation_defaults = load_generation_defaults(a.generation_config, a.model.model_dir);
  f.tokenizer = local_model_tokenizer(a.model);
  if (!a.state_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(a.state_dir, ec);
    if (ec) fail("--state-dir {}: cannot be created: {}", a.state_dir, ec.message());
  }
  return f;
}

// Everything the coordinator runs once the model is loaded: servers, scheduler, batch jobs, until a
// termination signal.
void serve_on_coordinator(const ServeArgs& a, const CoordinatorFiles& files, StepEngine& engine, const sigset_t& signals) {
  const std::vector<std::string>& api_keys = files.api_keys;
  const std::shared_ptr<boost::asio::ssl::context>& tls = files.tls;
  spdlog::info("shardlm {}: {}", kVersion, engine.description);
  const Tokenizer& tokenizer = *files.tokenizer;
  const std::string model_name = a.model_name.empty() ? local_model_name(a.model) : a.model_name;

  telemetry::Metrics metrics(model_name.empty() ? "model" : model_name, engine.num_workers());
  for (int w = 0; w < engine.num_workers(); ++w) metrics.set_worker_up(w, true);

  SchedulerOptions so;
  so.max_step_tokens = a.max_step_tokens;
  so.max_running = a.max_sequences;
  so.max_waiting = a.max_waiting;
  so.max_batch_running = a.batch_sequences > 0 ? a.batch_sequences : std::max(1, a.max_sequences / 2);
  so.heartbeat_s = std::min(5.0, a.worker_timeout / 4);
  Scheduler scheduler(engine, so);
  SchedulerHooks hooks;
  hooks.step = [&](const StepReport& report) {
    std::vector<telemetry::WorkerStepRecord> records;
    for (const WorkerStepFigures& f : engine.last_step_figures()) records.push_back(to_record(f));
    if (static_cast<int>(records.size()) == engine.num_workers()) metrics.observe_step(report.seconds, records);
    metrics.count_tokens(report.prompt_tokens, report.sampled_tokens);
    // After every step (the scheduler's figures are updated before this hook runs).
    const SchedulerStats st = scheduler.stats();
    metrics.set_scheduler(st.running, st.waiting, st.kv_usage, st.preemptions);
  };
  hooks.heartbeat = [&] {
    std::vector<telemetry::WorkerStepRecord> records;
    for (const WorkerStepFigures& f : engine.last_step_figures()) records.push_back(to_record(f));
    if (static_cast<int>(records.size()) == engine.num_workers()) metrics.set_worker_state(records);
  };
  hooks.first_token = [&](double s) { metrics.observe_first_token(s); };
  hooks.inter_token = [&](double s) { metrics.observe_inter_token(s); };
  hooks.finished = [&](const GenerationSummary& s) {
    telemetry::RequestRecord r;
    r.queue_s = s.timings.queue_s;
    // Without a first token there was no prefill to its end and no decode: not observed.
    r.prefill_s = s.completion_tokens > 0 ? s.timings.prefill_s : -1;
    r.decode_s = s.completion_tokens > 0 ? s.timings.decode_s : -1;
    r.e2e_s = s.timings.total_s;
    r.prompt_tokens = s.prompt_tokens;
    r.generation_tokens = s.completion_tokens;
    r.finished_reason = finish_label(s.reason);
    metrics.observe_request(r);
  };
  // Lost workers: the scheduler has failed every request as unavailable; wake the main thread.
  std::mutex lost_mutex;
  std::string lost_reason;
  hooks.engine_lost = [&](const std::string& reason) {
    {
      std::lock_guard<std::mutex> lock(lost_mutex);
      lost_reason = reason;
    }
    for (int w = 0; w < engine.num_workers(); ++w) metrics.set_worker_up(w, false);
    kill(getpid(), SIGUSR1);
  };
  scheduler.set_hooks(hooks);
  TextService service(scheduler, tokenizer, engine.config(), model_name);
  service.set_generation_defaults(files.generation_defaults);
  if (!files.generation_defaults.empty()) {
    spdlog::info("sampling defaults (generation_config.json; a request's own values win): {}", files.generation_defaults.describe());
  }
  // What the HTTP API and batch jobs submit through (it refuses prompts over --max-prompt-tokens).
  std::shared_ptr<http::TextBackend> backend = http::text_service_backend(service, a.max_prompt_tokens);
  // One budget per API key (or client address) across both servers.
  std::shared_ptr<RateLimiter> rate_limiter = a.rate_limit > 0 ? std::make_shared<RateLimiter>(a.rate_limit) : nullptr;
  // Batch jobs, kept in --state-dir (without it the batch routes and job messages say they are off).
  std::unique_ptr<jobs::JobService> job_service;
  if (!a.state_dir.empty()) {
    jobs::JobServiceOptions jo;
    jo.runner.max_inflight = jo.runner.max_inflight_per_job = 2 * so.max_batch_running;
    job_service = std::make_unique<jobs::JobService>(a.state_dir, backend, jo);
  }
  jobs::BatchApi batch_api(job_service.get());

  if (a.metrics_port >= 0) metrics.serve(a.metrics_host.empty() ? a.host : a.metrics_host, a.metrics_port);
  http::HttpServerOptions ho;
  ho.host = a.host;
  ho.port = a.http_port;
  ho.api_keys = api_keys;
  ho.threads = a.http_threads;
  ho.tls = tls;
  ho.max_connections = static_cast<size_t>(a.max_connections);
  ho.max_body_bytes = a.max_body_bytes;
  ho.rate_limiter = rate_limiter;
  http::HttpServer http_server(backend, ho);
  batch_api.add_routes(http_server);
  tcp::TcpServerOptions to;
  to.host = a.host;
  to.port = a.port;
  to.api_keys = api_keys;
  to.tls = tls;
  to.max_connections = static_cast<size_t>(a.max_connections);
  to.max_prompt_tokens = a.max_prompt_tokens;
  to.rate_limiter = rate_limiter;
  tcp::TcpServer tcp_server(service, to);
  if (job_service) tcp_server.set_job_handler(std::make_shared<jobs::ProtocolJobHandler>(*job_service));
  if (job_service) job_service->start();
  tcp_server.start();
  http_server.start();
  http_server.set_ready(true);
  // One line a launcher can wait for and parse.
  std::printf("shardlm serve: model %s ready | OpenAI API %s://%s:%d/v1 | protocol %s:%d%s | metrics %s\n", model_name.c_str(),
              tls ? "https" : "http", a.host.c_str(), http_server.port(), a.host.c_str(), tcp_server.port(), tls ? " (TLS)" : "",
              a.metrics_port >= 0 ? fmt::format("http://{}:{}/metrics", a.metrics_host.empty() ? a.host : a.metrics_host, metrics.bound_port()).c_str()
                                  : "off");
  std::fflush(stdout);

  // Scheduler gauges while idle too (the step hook covers busy times).
  std::atomic<bool> done{false};
  std::thread gauges([&] {
    while (!done) {
      const SchedulerStats st = scheduler.stats();
      metrics.set_scheduler(st.running, st.waiting, st.kv_usage, st.preemptions);
      if (job_service) {
        try {
          metrics.set_batch_jobs(job_service->count_by_state());
        } catch (const std::exception& e) {
          spdlog::warn("batch jobs gauge: {}", e.what());
        }
      }
      for (int i = 0; i < 20 && !done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });

  int sig = 0;
  sigwait(&signals, &sig);
  auto lost_now = [&] {
    std::lock_guard<std::mutex> lock(lost_mutex);
    return lost_reason;
  };
  http_server.set_draining();
  tcp_server.set_ready(false);
  if (job_service) job_service->pause();  // no new batch lines; those running may finish
  if (lost_now().empty()) {
    spdlog::info("signal {}: no new requests; letting running ones finish (up to {} s)", sig, a.grace_s);
    // (When mpirun ends the job because a rank died, the running requests cannot finish: the
    // scheduler notices within --worker-timeout and fails them as unavailable, which ends this wait.)
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(a.grace_s);
    while (std::chrono::steady_clock::now() < deadline) {
      const SchedulerStats st = scheduler.stats();
      if (st.running == 0 && st.waiting == 0 && tcp_server.preparing() == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  } else {
    // Clients already have their "unavailable" errors: give the servers a moment to deliver them.
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  // Ends what is left with "the server is shutting down" and releases the workers; after a loss the
  // scheduler's thread has already failed everything and is ending (it touches the engine no more):
  // this joins it. A worker that hangs is noticed here (within --worker-timeout): a loss too.
  scheduler.stop(false);
  // The servers write those errors before they close their connections.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  tcp_server.stop();
  http_server.stop();
  const std::string lost = lost_now();
  if (job_service) job_service->stop();  // batch lines cut short run again at the next start
  done = true;
  gauges.join();
  if (!lost.empty()) {
    // A worker is gone: end the MPI job with a status that tells the launcher to start it again.
    spdlog::error("{}; ending the job (exit status {}) so that it is restarted", lost, kWorkerLostExitCode);
    std::fflush(nullptr);
    engine.abort(lost, kWorkerLostExitCode);
    std::_Exit(kWorkerLostExitCode);  // a single process: nothing to abort
  }
  spdlog::info("stopped");
}

void run_serve(const ServeArgs& a) {
  // Termination signals are taken by sigwait in this thread only: block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGUSR1);  // raised by this process when the workers are lost
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // KV capacity: every sequence slot at the full context, or what fits --kv-memory-per-worker.
  EngineOptions eo = engine_options(a.model, 0, a.max_sequences);
  eo.max_context = a.max_context;
  eo.worker_timeout_s = a.worker_timeout;
  CoordinatorFiles files;
  eo.before_load = [&] { files = read_coordinator_files(a); };
  std::unique_ptr<StepEngine> engine = open_engine(eo);
  if (!engine) return;  // a worker rank: served until the coordinator shut down
  try {
    serve_on_coordinator(a, files, *engine, signals);
  } catch (const std::exception& e) {
    // Ends an MPI job at once with the reason (workers may be waiting in a step; unwinding past the
    // MPI runtime would abort the job before main could print it); a single process rethrows.
    engine->abort(e.what());
    throw;
  }
}

CommandRegistrar reg([](CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand("serve", "Serve a model: TCP protocol, OpenAI HTTP API and metrics (rank 0 of an MPI job)");
  add_local_model_options(*cmd, a->model);
  cmd->add_option("--host", a->host, "Address the servers listen on (0.0.0.0: every interface)")->capture_default_str();
  cmd->add_option("--port", a->port, "TCP client protocol port (0 = any free)")->check(CLI::Range(0, 65535));
  cmd->add_option("--http-port", a->http_port, "OpenAI-compatible HTTP port (0 = any free)")->check(CLI::Range(0, 65535));
  cmd->add_option("--metrics-port", a->metrics_port, "Prometheus /metrics port (0 = any free, -1 = off)")->check(CLI::Range(-1, 65535));
  cmd->add_option("--metrics-host", a->metrics_host, "Address of /metrics (default: --host)");
  cmd->add_option("--api-key-file", a->api_key_file, "File of API keys, one per line; clients must present one");
  cmd->add_option("--state-dir", a->state_dir, "Folder of the durable batch-job state");
  cmd->add_option("--model-name", a->model_name, "Model name clients use (default: the model folder's name)");
  cmd->add_option("--max-context", a->max_context, "Positions per sequence (default: the model's max_position_embeddings)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  cmd->add_option("--max-sequences", a->max_sequences, "Sequences running at once")->check(CLI::Range(1, 4096));
  cmd->add_option("--max-step-tokens", a->max_step_tokens, "Tokens per step (decode + prompt chunks)")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--max-waiting", a->max_waiting, "Queued requests at most (more get 429)")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--batch-sequences", a->batch_sequences, "Batch-job lines running at once (default: half of --max-sequences)")
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--http-threads", a->http_threads, "HTTP server threads")->check(CLI::Range(1, 64));
  cmd->add_option("--shutdown-grace", a->grace_s, "Seconds running requests may finish after SIGTERM")->check(CLI::Range(0.0, 3600.0));
  auto* cert = cmd->add_option("--tls-cert", a->tls_cert, "PEM certificate (chain) file: HTTPS and the TCP protocol inside TLS (with --tls-key)");
  auto* key = cmd->add_option("--tls-key", a->tls_key, "PEM private key file of --tls-cert (unencrypted)");
  cert->needs(key);
  key->needs(cert);
  cmd->add_option("--max-connections", a->max_connections,
                  "Open connections per server (HTTP, TCP) at most; more are answered 'too many connections' and closed (0 = no limit)")
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--max-body-bytes", a->max_body_bytes, "Largest HTTP request body (more get 413)")
      ->check(CLI::Range(size_t{1024}, size_t{1} << 32));
  cmd->add_option("--max-prompt-tokens", a->max_prompt_tokens, "Longest prompt in tokens (longer ones are refused; 0 = the context)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 24));
  cmd->add_option("--rate-limit", a->rate_limit, "Requests per minute per API key (per client address without keys), burst as many (0 = off)")
      ->check(CLI::Range(0.0, 1e9));
  cmd->add_option("--generation-config", a->generation_config,
                  "Sampling defaults for requests that leave them out: auto (the model folder's generation_config.json), "
                  "none, or a generation_config.json file or its folder")
      ->capture_default_str();
  cmd->add_option("--worker-timeout", a->worker_timeout,
                  "Seconds a worker may take to answer before it counts as lost; then every request fails as unavailable "
                  "and the job exits with status 75 to be restarted (workers end the job when the coordinator is silent as long)")
      ->check(CLI::Range(1.0, 86400.0));
  cmd->callback([a] { run_serve(*a); });
});

}  // namespace
}  // namespace shardlm::cli
