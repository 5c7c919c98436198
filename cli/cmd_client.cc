// `shardlm client`: talks to a running `shardlm serve` over the TCP client protocol. `generate` and
// `chat` stream the answer to stdout (reasoning to stderr) and a usage / timings summary to stderr;
// `models` and `health` print what the server reports. Ctrl-C cancels a running request.
// `jobs submit|status|list|cancel|results` manage batch jobs (a JSONL file of requests run in the
// background; docs/protocol.md): --wait shows a progress bar with an ETA on the terminal. --tls talks
// to a server started with --tls-cert, verifying its certificate (--tls-ca, or the system's CAs).
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <thread>

#include "cli/command.h"
#include "common/error.h"
#include "coordinator/tcp/client.h"
#include "coordinator/tcp/protocol.h"

namespace shardlm::cli {
namespace {

// Options of `generate` / `chat` (each subcommand has its own set).
struct GenerationArgs {
  int max_tokens = 0;
  float temperature = 1.0f;
  int top_k = 0;
  float top_p = 1.0f;
  float min_p = 0.0f;
  uint64_t seed = 0;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  float repetition_penalty = 1.0f;
  std::vector<std::string> logit_bias;
  int min_tokens = 0;
  bool include_stop = false;
  std::vector<std::string> stop;
  bool ignore_eos = false;
  bool json_object = false;
  std::string json_schema;
  std::vector<std::string> guided_choice;
  int n = 1;
  int prompt_logprobs = 0;
  bool echo = false;  // generate only
  bool quiet = false;
  // Given on the command line? (absent ones take the server's defaults)
  CLI::Option* max_tokens_opt = nullptr;
  CLI::Option* temperature_opt = nullptr;
  CLI::Option* top_k_opt = nullptr;
  CLI::Option* top_p_opt = nullptr;
  CLI::Option* min_p_opt = nullptr;
  CLI::Option* seed_opt = nullptr;
  CLI::Option* presence_penalty_opt = nullptr;
  CLI::Option* frequency_penalty_opt = nullptr;
  CLI::Option* repetition_penalty_opt = nullptr;
  CLI::Option* min_tokens_opt = nullptr;
  CLI::Option* prompt_logprobs_opt = nullptr;
};

struct ClientArgs {
  std::string server = "127.0.0.1:7070";
  std::string api_key;
  double timeout_s = 10;
  bool tls = false;
  std::string tls_ca;
  bool tls_insecure = false;
  std::string prompt;   // generate
  std::string message;  // chat
  std::string system;
  bool thinking = false;
  GenerationArgs generate;
  GenerationArgs chat;
  // jobs
  std::string job_file;
  std::string job_id;
  std::string endpoint;
  std::vector<std::string> metadata;  // KEY=VALUE
  bool wait = false;
  int list_limit = 20;
  std::string list_after;  // jobs list: the ones older than this job
  std::string results_out;
  bool results_errors = false;
  bool results_all = false;
};

std::atomic<bool> g_interrupted{false};

extern "C" void on_sigint(int) {
  g_interrupted = true;
  std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C ends the program at once
}

void connect(tcp::Client& client, const ClientArgs& a) {
  const auto [host, port] = tcp::parse_host_port(a.server);
  std::string key = a.api_key;
  if (key.empty()) {
    if (const char* env = std::getenv("SHARDLM_API_KEY")) key = env;
  }
  client.connect(host, port, key);
}

tcp::ClientOptions client_options(const ClientArgs& a) {
  tcp::ClientOptions co;
  co.connect_timeout_s = a.timeout_s;
  co.client_name = "shardlm-cli";
  co.tls = a.tls;
  co.tls_ca_file = a.tls_ca;
  co.tls_insecure = a.tls_insecure;
  return co;
}

tcp::RequestOptions request_options(const GenerationArgs& a, bool thinking) {
  tcp::RequestOptions o;
  if (a.max_tokens_opt->count() > 0) o.max_tokens = a.max_tokens;
  if (a.temperature_opt->count() > 0) o.temperature = a.temperature;
  if (a.top_k_opt->count() > 0) o.top_k = a.top_k;
  if (a.top_p_opt->count() > 0) o.top_p = a.top_p;
  if (a.min_p_opt->count() > 0) o.min_p = a.min_p;
  if (a.seed_opt->count() > 0) o.seed = a.seed;
  if (a.presence_penalty_opt->count() > 0) o.presence_penalty = a.presence_penalty;
  if (a.frequency_penalty_opt->count() > 0) o.frequency_penalty = a.frequency_penalty;
  if (a.repetition_penalty_opt->count() > 0) o.repetition_penalty = a.repetition_penalty;
  o.logit_bias = logit_bias_map(a.logit_bias);
  if (a.min_tokens_opt->count() > 0) o.min_tokens = a.min_tokens;
  o.include_stop_str_in_output = a.include_stop;
  o.stop = a.stop;
  o.ignore_eos = a.ignore_eos;
  o.enable_thinking = thinking;
  o.guided_json_object = a.json_object;
  o.guided_json_schema = a.json_schema;
  o.guided_choice = a.guided_choice;
  if (a.n != 1) o.n = a.n;
  if (a.prompt_logprobs_opt->count() > 0) o.prompt_logprobs = a.prompt_logprobs;
  o.echo = a.echo;
  return o;
}

// A token's bytes in quotes for printing (quotes and backslashes escaped, control bytes as \xNN).
std::string quoted_token(const std::string& bytes) {
  std::string out = "\"";
  for (const unsigned char c : bytes) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7F) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// The prompt's log-probabilities (protocol 1.6) on stderr, one token per line.
void print_prompt_logprobs(const client::Delta& d) {
  std::fprintf(stderr, "[prompt log-probabilities: token, logprob, rank, best tokens there]\n");
  for (const client::PromptLogprob& p : d.prompt_logprobs()) {
    std::string line = std::to_string(p.id()) + " " + quoted_token(p.token());
    if (p.has_logprob()) {
      char v[64];
      std::snprintf(v, sizeof v, " %.4f rank %lld", p.logprob(), static_cast<long long>(p.rank()));
      line += v;
    }
    for (const client::PromptAlternative& t : p.top()) {
      char v[32];
      std::snprintf(v, sizeof v, "=%.4f", t.logprob());
      line += " | " + quoted_token(t.token()) + v;
    }
    std::fprintf(stderr, "%s\n", line.c_str());
  }
}

// Streams one request: content to stdout, reasoning to stderr, tool calls to stdout as one line each.
void run_streaming(const ClientArgs& a, bool chat) {
  const GenerationArgs& g = chat ? a.chat : a.generate;
  tcp::Client client(client_options(a));
  connect(client, a);
  g_interrupted = false;
  std::signal(SIGINT, on_sigint);
  client.set_interrupt(&g_interrupted);
  bool in_reasoning = false;
  bool ends_with_newline = true;
  // With n > 1 each choice's text is gathered and printed when the request ends, choice by choice.
  std::map<int32_t, std::string> choice_text, choice_reasoning;
  const auto on_delta = [&](const client::Delta& d) {
    if (d.prompt_logprobs_size() > 0) print_prompt_logprobs(d);
    if (g.n > 1) {
      choice_reasoning[d.index()] += d.reasoning();
      std::string& text = choice_text[d.index()];
      text += d.content();
      for (const client::ToolCall& call : d.tool_calls()) {
        if (!text.empty() && text.back() != '\n') text += '\n';
        text += "[tool call " + call.id() + "] " + call.name() + " " + call.arguments_json() + "\n";
      }
      return;
    }
    if (!d.reasoning().empty()) {
      std::fwrite(d.reasoning().data(), 1, d.reasoning().size(), stderr);
      std::fflush(stderr);
      in_reasoning = true;
    }
    if (!d.content().empty()) {
      if (in_reasoning) {
        std::fputc('\n', stderr);
        in_reasoning = false;
      }
      std::fwrite(d.content().data(), 1, d.content().size(), stdout);
      ends_with_newline = d.content().back() == '\n';
    }
    for (const client::ToolCall& call : d.tool_calls()) {
      if (!ends_with_newline) std::fputc('\n', stdout);
      std::fprintf(stdout, "[tool call %s] %s %s\n", call.id().c_str(), call.name().c_str(), call.arguments_json().c_str());
      ends_with_newline = true;
    }
    std::fflush(stdout);
  };
  const tcp::RequestOptions options = request_options(g, chat && a.thinking);
  client::Finish finish;
  if (chat) {
    std::vector<client::ChatMessage> messages;
    if (!a.system.empty()) {
      messages.emplace_back().set_role("system");
      messages.back().set_content(a.system);
    }
    messages.emplace_back().set_role("user");
    messages.back().set_content(a.message);
    finish = client.chat(messages, options, on_delta);
  } else {
    finish = client.generate(a.prompt, options, on_delta);
  }
  std::signal(SIGINT, SIG_DFL);
  // The Finish of a request with n > 1 holds each choice's reason (protocol 1.6).
  for (int32_t i = 0; g.n > 1 && i < g.n; ++i) {
    const client::FinishReason reason = i < finish.choice_finish_reasons_size() ? finish.choice_finish_reasons(i) : finish.finish_reason();
    if (!choice_reasoning[i].empty()) std::fprintf(stderr, "[choice %d reasoning]\n%s\n", i, choice_reasoning[i].c_str());
    const std::string& text = choice_text[i];
    std::fprintf(stdout, "[choice %d | finish: %s]\n%s", i, tcp::finish_reason_name(reason), text.c_str());
    if (!text.empty() && text.back() != '\n') std::fputc('\n', stdout);
  }
  if (in_reasoning) std::fputc('\n', stderr);
  if (!ends_with_newline) std::fputc('\n', stdout);
  std::fflush(stdout);
  if (!g.quiet) {
    const client::Usage& u = finish.usage();
    const client::Timings& t = finish.timings();
    const double decode_rate =
        u.completion_tokens() > 1 && t.decode_seconds() > 0 ? (u.completion_tokens() - 1) / t.decode_seconds() : 0.0;
    std::fprintf(stderr,
                 "[%lld prompt tokens | %lld completion tokens | finish: %s | queue %.3f s, prefill %.3f s, "
                 "TTFT %.3f s, decode %.3f s (%.1f tok/s), total %.3f s]\n",
                 static_cast<long long>(u.prompt_tokens()), static_cast<long long>(u.completion_tokens()),
                 tcp::finish_reason_name(finish.finish_reason()), t.queue_seconds(), t.prefill_seconds(),
                 t.ttft_seconds(), t.decode_seconds(), decode_rate, t.total_seconds());
  }
  if (finish.finish_reason() == client::FINISH_REASON_CANCELLED && g_interrupted) set_exit_code(130);
}

void run_models(const ClientArgs& a) {
  tcp::Client client(client_options(a));
  connect(client, a);
  for (const client::ModelInfo& m : client.models()) {
    std::printf("%s\tmax_context=%lld\n", m.name().c_str(), static_cast<long long>(m.max_context()));
  }
}

void run_health(const ClientArgs& a) {
  tcp::Client client(client_options(a));
  connect(client, a);
  const client::HealthStatus h = client.health();
  const client::Welcome& w = client.welcome();
  std::printf("status: %s\n", h.serving() ? "serving" : "not serving");
  std::printf("server: %s (protocol %u.%u)\n", w.server_name().c_str(), w.protocol_major(), w.protocol_minor());
  std::printf("model: %s\n", h.model().c_str());
  std::printf("running: %d\nwaiting: %d\n", h.running(), h.waiting());
  std::printf("kv_usage: %.1f%%\n", 100.0 * h.kv_usage());
  std::printf("steps: %lld\n", static_cast<long long>(h.steps()));
  std::printf("uptime: %.1f s\n", h.uptime_seconds());
  if (!h.serving()) set_exit_code(1);
}

// ---- batch jobs ----------------------------------------------------------------------------------

std::string format_duration(double s) {
  if (s < 0 || !std::isfinite(s)) return "?";
  const long t = static_cast<long>(s + 0.5);
  if (t >= 3600) return fmt::format("{}h{:02}m", t / 3600, (t % 3600) / 60);
  if (t >= 60) return fmt::format("{}m{:02}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

std::string format_time(int64_t unix_s) {
  if (unix_s <= 0) return "-";
  const std::time_t t = static_cast<std::time_t>(unix_s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

bool job_done(const client::JobInfo& j) {
  return j.state() == client::JOB_COMPLETED || j.state() == client::JOB_CANCELLED || j.state() == client::JOB_FAILED;
}

void print_job(const client::JobInfo& j) {
  std::printf("id: %s\n", j.id().c_str());
  std::printf("state: %s\n", tcp::job_state_name(j.state()));
  std::printf("endpoint: %s\n", j.endpoint().empty() ? "(per line)" : j.endpoint().c_str());
  std::printf("file: %s (%s)\n", j.input_file_id().c_str(), j.filename().c_str());
  std::printf("lines: %lld total, %lld completed, %lld failed, %lld running\n", static_cast<long long>(j.total()),
              static_cast<long long>(j.completed()), static_cast<long long>(j.failed()), static_cast<long long>(j.running()));
  std::printf("created: %s\n", format_time(j.created_at()).c_str());
  std::printf("started: %s\n", format_time(j.started_at()).c_str());
  std::printf("finished: %s\n", format_time(j.finished_at()).c_str());
  if (!j.output_file_id().empty()) std::printf("output_file: %s\n", j.output_file_id().c_str());
  if (!j.error_file_id().empty()) std::printf("error_file: %s\n", j.error_file_id().c_str());
  for (const auto& [k, v] : j.metadata()) std::printf("metadata: %s=%s\n", k.c_str(), v.c_str());
  if (!j.error().empty()) std::printf("error: %s\n", j.error().c_str());
}

// Polls the job until it is finished: a progress bar with rate and ETA on a terminal (stderr), a line
// every 10 s otherwise. Returns the final state.
client::JobInfo wait_for_job(tcp::Client& client, const std::string& id) {
  using Clock = std::chrono::steady_clock;
  const bool tty = ::isatty(STDERR_FILENO) != 0;
  std::deque<std::pair<Clock::time_point, int64_t>> window;  // (when, lines done) over the last 30 s
  const Clock::time_point start = Clock::now();
  Clock::time_point last_line = start;
  client::JobInfo j;
  for (;;) {
    j = client.job_status(id);
    const int64_t done = j.completed() + j.failed();
    const Clock::time_point now = Clock::now();
    window.emplace_back(now, done);
    while (window.size() > 2 && now - window.front().first > std::chrono::seconds(30)) window.pop_front();
    const double span = std::chrono::duration<double>(now - window.front().first).count();
    const double rate = span > 0 ? static_cast<double>(done - window.front().second) / span : 0.0;
    const int64_t total = std::max<int64_t>(j.total(), 1);
    const double eta = rate > 0 ? static_cast<double>(j.total() - done) / rate : -1.0;
    if (tty) {
      constexpr int kWidth = 30;
      const int filled = static_cast<int>(kWidth * done / total);
      std::string bar(static_cast<size_t>(filled), '#');
      bar.resize(kWidth, '.');
      std::fprintf(stderr, "\r[%s] %lld/%lld %3d%%  %lld failed  %lld running  %.1f lines/s  ETA %s  %s   ", bar.c_str(),
                   static_cast<long long>(done), static_cast<long long>(j.total()), static_cast<int>(100 * done / total),
                   static_cast<long long>(j.failed()), static_cast<long long>(j.running()), rate,
                   job_done(j) ? "0s" : format_duration(eta).c_str(), tcp::job_state_name(j.state()));
      std::fflush(stderr);
    } else if (job_done(j) || now - last_line >= std::chrono::seconds(10)) {
      std::fprintf(stderr, "%s: %s %lld/%lld (%lld failed), %.1f lines/s, ETA %s\n", id.c_str(), tcp::job_state_name(j.state()),
                   static_cast<long long>(done), static_cast<long long>(j.total()), static_cast<long long>(j.failed()), rate,
                   job_done(j) ? "0s" : format_duration(eta).c_str());
      last_line = now;
    }
    if (job_done(j)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  if (tty) std::fputc('\n', stderr);
  std::fprintf(stderr, "%s %s: %lld completed, %lld failed of %lld (watched %s)%s%s%s%s\n", id.c_str(),
               tcp::job_state_name(j.state()), static_cast<long long>(j.completed()), static_cast<long long>(j.failed()),
               static_cast<long long>(j.total()), format_duration(std::chrono::duration<double>(Clock::now() - start).count()).c_str(),
               j.output_file_id().empty() ? "" : "; output ", j.output_file_id().c_str(),
               j.error_file_id().empty() ? "" : "; errors ", j.error_file_id().c_str());
  return j;
}

void run_jobs_submit(const ClientArgs& a) {
  std::ifstream in(a.job_file, std::ios::binary);
  if (!in) fail("{}: cannot be read", a.job_file);
  const std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  tcp::Client client(client_options(a));
  connect(client, a);
  const uint32_t limit = client.welcome().max_frame_bytes();
  if (limit > 0 && content.size() + 4096 > limit) {
    fail("{} has {} bytes; the server takes job files of up to about {} bytes (one protocol frame): split it into "
         "several jobs, or upload it with the OpenAI Batch API over HTTP",
         a.job_file, content.size(), limit - 4096);
  }
  client::JobSubmitRequest r;
  r.set_jsonl(content);
  r.set_endpoint(a.endpoint);
  r.set_filename(std::filesystem::path(a.job_file).filename().string());
  for (const std::string& kv : a.metadata) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) fail("--metadata '{}' is not KEY=VALUE", kv);
    (*r.mutable_metadata())[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  const client::JobInfo j = client.job_submit(r);
  std::printf("%s\n", j.id().c_str());
  std::fflush(stdout);
  std::fprintf(stderr, "submitted %s: %lld lines (%lld malformed)\n", j.id().c_str(), static_cast<long long>(j.total()),
               static_cast<long long>(j.failed()));
  if (a.wait) {
    const client::JobInfo end = wait_for_job(client, j.id());
    if (end.state() != client::JOB_COMPLETED) set_exit_code(1);
  }
}

void run_jobs_status(const ClientArgs& a) {
  tcp::Client client(client_options(a));
  connect(client, a);
  client::JobInfo j = a.wait ? wait_for_job(client, a.job_id) : client.job_status(a.job_id);
  print_job(j);
  if (a.wait && j.state() != client::JOB_COMPLETED) set_exit_code(1);
}

void run_jobs_list(const ClientArgs& a) {
  tcp::Client client(client_options(a));
  connect(client, a);
  const client::JobList list = client.job_list(static_cast<uint32_t>(a.list_limit), a.list_after);
  std::printf("%-32s %-12s %9s %9s %7s  %s\n", "ID", "STATE", "DONE", "TOTAL", "FAILED", "CREATED");
  for (const client::JobInfo& j : list.jobs()) {
    std::printf("%-32s %-12s %9lld %9lld %7lld  %s\n", j.id().c_str(), tcp::job_state_name(j.state()),
                static_cast<long long>(j.completed() + j.failed()), static_cast<long long>(j.total()),
                static_cast<long long>(j.failed()), format_time(j.created_at()).c_str());
  }
  if (list.has_more() && list.jobs_size() > 0) {
    std::printf("(more: --after %s shows the next ones)\n", list.jobs(list.jobs_size() - 1).id().c_str());
  }
}

void run_jobs_cancel(const ClientArgs& a) {
  tcp::Client client(client_options(a));
  connect(client, a);
  const client::JobInfo j = client.job_cancel(a.job_id);
  std::printf("%s: %s (%lld completed, %lld failed of %lld)\n", j.id().c_str(), tcp::job_state_name(j.state()),
              static_cast<long long>(j.completed()), static_cast<long long>(j.failed()), static_cast<long long>(j.total()));
}

void run_jobs_results(const ClientArgs& a) {
  tcp::Client client(client_options(a));
  connect(client, a);
  client.job_status(a.job_id);  // an unknown job is refused before --out is touched
  std::ofstream file;
  std::FILE* out = stdout;
  if (!a.results_out.empty() && a.results_out != "-") {
    file.open(a.results_out, std::ios::binary | std::ios::trunc);
    if (!file) fail("--out {}: cannot be written", a.results_out);
  }
  client::JobResultsRequest r;
  r.set_job_id(a.job_id);
  r.set_kind(a.results_all ? client::JOB_RESULTS_ALL : a.results_errors ? client::JOB_RESULTS_ERRORS : client::JOB_RESULTS_OUTPUT);
  const int64_t lines = client.job_results(r, [&](const client::JobResultChunk& chunk) {
    if (file.is_open()) {
      file.write(chunk.jsonl().data(), static_cast<std::streamsize>(chunk.jsonl().size()));
    } else {
      std::fwrite(chunk.jsonl().data(), 1, chunk.jsonl().size(), out);
    }
  });
  if (file.is_open()) {
    file.close();
    if (!file) fail("--out {}: writing failed", a.results_out);
  }
  std::fflush(stdout);
  const client::JobInfo j = client.job_status(a.job_id);
  std::fprintf(stderr, "%lld result lines (%s; job %s: %lld completed, %lld failed of %lld)\n", static_cast<long long>(lines),
               a.results_all ? "all" : a.results_errors ? "errors" : "output", tcp::job_state_name(j.state()),
               static_cast<long long>(j.completed()), static_cast<long long>(j.failed()), static_cast<long long>(j.total()));
}

void add_generation_options(CLI::App& cmd, GenerationArgs& a) {
  a.max_tokens_opt = cmd.add_option("--max-tokens", a.max_tokens, "Most tokens to generate (default: the model's max_new_tokens, else up to the end of the context)")
                         ->check(CLI::Range(1, 1 << 24));
  a.temperature_opt = cmd.add_option("--temperature", a.temperature, "Sampling temperature (0 = greedy; default: the model's, else 1)");
  a.top_k_opt = cmd.add_option("--top-k", a.top_k, "Top-k (0 = off; default: the model's, else off)");
  a.top_p_opt = cmd.add_option("--top-p", a.top_p, "Top-p (1 = off; default: the model's, else off)");
  a.min_p_opt = cmd.add_option("--min-p", a.min_p, "Min-p (0 = off; default: the model's, else off)");
  a.seed_opt = cmd.add_option("--seed", a.seed, "Random seed");
  a.presence_penalty_opt = cmd.add_option("--presence-penalty", a.presence_penalty,
                                          "Minus this on every token already generated (-2..2; 0 = off)");
  a.frequency_penalty_opt = cmd.add_option("--frequency-penalty", a.frequency_penalty,
                                           "Minus this times each token's count in the output (-2..2; 0 = off)");
  a.repetition_penalty_opt = cmd.add_option("--repetition-penalty", a.repetition_penalty,
                                            "Divides positive logits of the tokens in prompt or output, multiplies negative ones "
                                            "(> 0; 1 = off; default: the model's, else 1)");
  cmd.add_option("--logit-bias", a.logit_bias, "TOKEN=BIAS: add BIAS (-100..100) to the token's logit (repeatable)")
      ->check(logit_bias_entry());
  a.min_tokens_opt = cmd.add_option("--min-tokens", a.min_tokens, "No end of sequence and no stop string before this many tokens")
                         ->check(CLI::NonNegativeNumber);
  cmd.add_flag("--include-stop-str-in-output", a.include_stop, "End the output with the stop string that matched");
  cmd.add_option("--stop", a.stop, "Stop string (repeat for several; at most 16)");
  cmd.add_flag("--ignore-eos", a.ignore_eos, "Keep generating after end-of-sequence tokens");
  cmd.add_flag("--json-object", a.json_object, "Guided decoding: the output is a JSON object (protocol 1.5)");
  cmd.add_option("--json-schema", a.json_schema, "Guided decoding: the output is JSON this schema (JSON text) allows (protocol 1.5)");
  cmd.add_option("--guided-choice", a.guided_choice, "Guided decoding: the output is exactly one of these (repeatable; protocol 1.5)");
  cmd.add_option("--n", a.n, "Choices: this many outputs, choice i with the seed + i, printed one after the other (protocol 1.6)")
      ->check(CLI::Range(1, 128));
  a.prompt_logprobs_opt = cmd.add_option("--prompt-logprobs", a.prompt_logprobs,
                                         "Print each prompt token's log-probability, rank and this many best tokens to stderr (0..20; protocol 1.6)")
                              ->check(CLI::Range(0, 20));
  cmd.add_flag("-q,--quiet", a.quiet, "No usage / timings summary on stderr");
}

CommandRegistrar reg([](CLI::App& app) {
  auto a = std::make_shared<ClientArgs>();
  CLI::App* cmd = app.add_subcommand("client", "Talk to a running `shardlm serve` over the TCP client protocol");
  cmd->add_option("--server", a->server, "Server address HOST:PORT (default 127.0.0.1:7070)");
  cmd->add_option("--api-key", a->api_key, "API key (default: the SHARDLM_API_KEY environment variable)");
  cmd->add_option("--timeout", a->timeout_s, "Seconds to wait for the connection and handshake")
      ->check(CLI::Range(0.1, 3600.0));
  auto* tls = cmd->add_flag("--tls", a->tls, "Connect with TLS (a server started with --tls-cert)");
  auto* ca = cmd->add_option("--tls-ca", a->tls_ca, "PEM CA certificate(s) to verify the server with (default: the system's CAs)")->needs(tls);
  cmd->add_flag("--tls-insecure", a->tls_insecure, "Do not verify the server's certificate or host name (testing only)")
      ->needs(tls)
      ->excludes(ca);
  cmd->require_subcommand(1);

  CLI::App* gen = cmd->add_subcommand("generate", "Complete a prompt; streams the text to stdout");
  gen->add_option("--prompt", a->prompt, "Prompt text")->required();
  add_generation_options(*gen, a->generate);
  gen->add_flag("--echo", a->generate.echo, "Begin the output with the prompt (protocol 1.6)");
  gen->callback([a] { run_streaming(*a, /*chat=*/false); });

  CLI::App* chat = cmd->add_subcommand("chat", "Send one user message in the chat format; streams the answer to stdout");
  chat->add_option("--message", a->message, "The user's message")->required();
  chat->add_option("--system", a->system, "System message");
  chat->add_flag("--enable-thinking", a->thinking, "Let the model think first (the reasoning goes to stderr)");
  add_generation_options(*chat, a->chat);
  chat->callback([a] { run_streaming(*a, /*chat=*/true); });

  cmd->add_subcommand("models", "List the served models")->callback([a] { run_models(*a); });

  CLI::App* jobs = cmd->add_subcommand("jobs", "Batch jobs: a JSONL file of requests run in the background (needs serve --state-dir)");
  jobs->require_subcommand(1);
  CLI::App* submit = jobs->add_subcommand("submit", "Submit a JSONL file (OpenAI batch lines); prints the job id");
  submit->add_option("file", a->job_file, "The JSONL file: {\"custom_id\", \"method\": \"POST\", \"url\", \"body\"} per line")->required();
  submit->add_option("--endpoint", a->endpoint, "Every line's url must be this (/v1/chat/completions or /v1/completions; default: per line)");
  submit->add_option("--metadata", a->metadata, "KEY=VALUE kept with the job (repeat for several)");
  submit->add_flag("--wait", a->wait, "Wait until the job is finished, with a progress bar (exit 1 unless it completed)");
  submit->callback([a] { run_jobs_submit(*a); });
  CLI::App* status = jobs->add_subcommand("status", "Show a job's state and progress");
  status->add_option("id", a->job_id, "Job id (batch_...)")->required();
  status->add_flag("--wait", a->wait, "Wait until the job is finished, with a progress bar (exit 1 unless it completed)");
  status->callback([a] { run_jobs_status(*a); });
  CLI::App* list = jobs->add_subcommand("list", "List jobs, newest first");
  list->add_option("--limit", a->list_limit, "Jobs at most")->check(integer_in(1, 100));
  list->add_option("--after", a->list_after, "Only jobs older than this one (the last id of the previous page)");
  list->callback([a] { run_jobs_list(*a); });
  CLI::App* cancel = jobs->add_subcommand("cancel", "Cancel a job (finished lines keep their results)");
  cancel->add_option("id", a->job_id, "Job id")->required();
  cancel->callback([a] { run_jobs_cancel(*a); });
  CLI::App* results = jobs->add_subcommand("results", "Write a job's results (OpenAI batch output lines) to stdout or a file");
  results->add_option("id", a->job_id, "Job id")->required();
  results->add_option("-o,--out", a->results_out, "Output file (default: stdout)");
  results->add_flag("--errors", a->results_errors, "The failed lines (the error file) instead of the successful ones");
  results->add_flag("--all", a->results_all, "Successful and failed lines together, in line order");
  results->callback([a] { run_jobs_results(*a); });
  cmd->add_subcommand("health", "Show the server's state (exit 1 when it is not serving)")->callback([a] { run_health(*a); });
});

}  // namespace
}  // namespace shardlm::cli
