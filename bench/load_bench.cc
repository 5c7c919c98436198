// Load benchmark of a running `shardlm serve` over the TCP client protocol: for each concurrency level
// C, C client threads (one connection each) send completion requests back to back until N requests
// have been sent; each request generates exactly --max-tokens tokens (ignore_eos). Per request it
// records, at the client, the time to the first token (TTFT), the inter-token latencies (ITL) and the
// end-to-end time, and it prints one Markdown table row per level. Tokens are counted by asking for
// the chosen token's log-probability (one per token in the deltas): a delta that brings k tokens
// after a gap g adds k ITL samples of g / k. With --no-logprobs the deltas themselves are the unit
// (a delta may hold several tokens, or none when a token's text is held back).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "common/error.h"
#include "coordinator/tcp/client.h"

using namespace shardlm;
using Clock = std::chrono::steady_clock;

namespace {

struct BenchArgs {
  std::string server = "127.0.0.1:7070";
  std::string api_key;
  std::vector<int> concurrency{1, 4, 16};
  int requests = 32;
  int prompt_tokens = 128;
  int max_tokens = 64;
  float temperature = 0.0f;
  int warmup = 2;
  uint64_t seed = 1;
  bool no_logprobs = false;
};

// One request as the client saw it (seconds).
struct RequestResult {
  bool ok = false;
  std::string error;
  double ttft = 0;
  double e2e = 0;
  std::vector<double> itl;  // per token after the first
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t streamed_tokens = 0;  // tokens seen in the deltas (log-probabilities, or deltas)
};

struct LevelResult {
  int concurrency = 0;
  double wall_s = 0;
  std::vector<RequestResult> requests;
};

// Linear interpolation between closest ranks; 0 for no samples.
double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double pos = p / 100.0 * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

// A prompt of `words` words drawn from a fixed list; different for every (seed, index).
std::string make_prompt(int words, uint64_t seed, uint64_t index) {
  static const char* const kWords[] = {
      "the",    "quick",  "brown",   "fox",    "jumps", "over",    "lazy",   "dog",    "river",  "stone",
      "light",  "garden", "window",  "paper",  "cloud", "silver",  "market", "winter", "engine", "orange",
      "forest", "music",  "bridge",  "yellow", "table", "morning", "letter", "mountain", "coffee", "story",
      "simple", "green",  "number",  "little", "house", "people",  "water",  "answer", "travel", "open"};
  constexpr size_t kCount = sizeof(kWords) / sizeof(kWords[0]);
  std::mt19937_64 rng(seed * 1000003 + index);
  std::string out;
  for (int i = 0; i < words; ++i) {
    if (i > 0) out += ' ';
    out += kWords[rng() % kCount];
  }
  return out;
}

tcp::RequestOptions request_options(const BenchArgs& a, int max_tokens) {
  tcp::RequestOptions o;
  o.max_tokens = max_tokens;
  o.temperature = a.temperature;
  o.seed = a.seed;
  o.ignore_eos = true;
  if (!a.no_logprobs) o.top_logprobs = 0;
  return o;
}

void connect(tcp::Client& client, const BenchArgs& a) {
  const auto [host, port] = tcp::parse_host_port(a.server);
  client.connect(host, port, a.api_key);
}

// count_tokens: deltas carry one log-probability per token (top_logprobs = 0).
RequestResult run_one(tcp::Client& client, const std::string& prompt, const tcp::RequestOptions& options) {
  const bool count_tokens = options.top_logprobs.has_value();
  RequestResult r;
  const Clock::time_point start = Clock::now();
  Clock::time_point last = start;
  try {
    const client::Finish finish = client.generate(prompt, options, [&](const client::Delta& d) {
      const Clock::time_point now = Clock::now();
      const int64_t k = count_tokens ? d.logprobs_size() : 1;
      if (k == 0) return;
      const double gap = std::chrono::duration<double>(now - last).count();
      int64_t from = 0;
      if (r.streamed_tokens == 0) {
        r.ttft = gap;  // the first token; the others of this delta came with it
        for (from = 1; from < k; ++from) r.itl.push_back(0.0);
      } else {
        for (; from < k; ++from) r.itl.push_back(gap / static_cast<double>(k));
      }
      r.streamed_tokens += k;
      last = now;
    });
    r.e2e = std::chrono::duration<double>(Clock::now() - start).count();
    r.prompt_tokens = finish.usage().prompt_tokens();
    r.completion_tokens = finish.usage().completion_tokens();
    if (r.streamed_tokens == 0) {
      // No delta at all (every token's text empty, without log-probabilities): the finish is the
      // first sign of an answer.
      r.ttft = r.e2e;
    }
    r.ok = true;
    if (count_tokens && r.streamed_tokens != r.completion_tokens) {
      r.ok = false;
      r.error = fmt::format("{} log-probabilities in the deltas for {} completion tokens", r.streamed_tokens,
                            r.completion_tokens);
    }
  } catch (const std::exception& e) {
    r.error = e.what();
  }
  return r;
}

LevelResult run_level(const BenchArgs& a, int concurrency, int words) {
  LevelResult level;
  level.concurrency = concurrency;
  std::atomic<int> next{0};
  std::mutex mutex;
  std::vector<std::thread> threads;
  const tcp::RequestOptions options = request_options(a, a.max_tokens);
  const Clock::time_point start = Clock::now();
  for (int t = 0; t < concurrency; ++t) {
    threads.emplace_back([&] {
      tcp::Client client;
      try {
        connect(client, a);
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(mutex);
        std::fprintf(stderr, "shardlm_bench_load: connecting failed: %s\n", e.what());
        return;
      }
      for (;;) {
        const int i = next.fetch_add(1);
        if (i >= a.requests) break;
        const std::string prompt = make_prompt(words, a.seed, static_cast<uint64_t>(concurrency) * 1000000 + i);
        RequestResult r = run_one(client, prompt, options);
        std::lock_guard<std::mutex> lock(mutex);
        if (!r.ok) std::fprintf(stderr, "shardlm_bench_load: request failed: %s\n", r.error.c_str());
        level.requests.push_back(std::move(r));
        if (!client.connected()) break;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  level.wall_s = std::chrono::duration<double>(Clock::now() - start).count();
  return level;
}

void print_header() {
  std::printf(
      "| concurrency | requests | failed | prompt tok | output tok/s | requests/s | TTFT p50 | TTFT p90 | TTFT p99 | "
      "ITL p50 | ITL p99 | e2e p50 | e2e p99 |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
}

void print_row(const LevelResult& level) {
  std::vector<double> ttft, itl, e2e;
  int64_t generated = 0, prompt = 0;
  int ok = 0;
  for (const RequestResult& r : level.requests) {
    if (!r.ok) continue;
    ++ok;
    ttft.push_back(1e3 * r.ttft);
    e2e.push_back(1e3 * r.e2e);
    for (double g : r.itl) itl.push_back(1e3 * g);
    generated += r.completion_tokens;
    prompt += r.prompt_tokens;
  }
  const int failed = static_cast<int>(level.requests.size()) - ok;
  std::printf("| %d | %d | %d | %.0f | %.1f | %.2f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f |\n",
              level.concurrency, ok, failed, ok > 0 ? static_cast<double>(prompt) / ok : 0.0,
              static_cast<double>(generated) / level.wall_s, ok / level.wall_s, percentile(ttft, 50),
              percentile(ttft, 90), percentile(ttft, 99), percentile(itl, 50), percentile(itl, 99),
              percentile(e2e, 50), percentile(e2e, 99));
  std::fflush(stdout);
}

// Words per prompt so that a prompt has about `a.prompt_tokens` tokens: one probe request measures the
// tokenizer's tokens per word (it also warms the server up).
int calibrate_words(const BenchArgs& a, tcp::Client& client) {
  const int probe_words = std::max(1, a.prompt_tokens);
  const RequestResult r = run_one(client, make_prompt(probe_words, a.seed, 0), request_options(a, 1));
  if (!r.ok) fail("the calibration request failed: {}", r.error);
  // Less one for the BOS token.
  const double per_word = static_cast<double>(std::max<int64_t>(1, r.prompt_tokens - 1)) / probe_words;
  return std::max(1, static_cast<int>(std::lround((a.prompt_tokens - 1) / per_word)));
}

int run(const BenchArgs& a) {
  if (a.requests < 1) fail("--requests must be at least 1, not {}", a.requests);
  if (a.prompt_tokens < 1) fail("--prompt-tokens must be at least 1, not {}", a.prompt_tokens);
  if (a.max_tokens < 1) fail("--max-tokens must be at least 1, not {}", a.max_tokens);
  for (int c : a.concurrency) {
    if (c < 1) fail("--concurrency levels must be at least 1, not {}", c);
  }
  tcp::Client probe;
  connect(probe, a);
  const client::Welcome& w = probe.welcome();
  const int words = calibrate_words(a, probe);
  for (int i = 0; i < a.warmup; ++i) {
    const RequestResult r = run_one(probe, make_prompt(words, a.seed, 1 + i), request_options(a, a.max_tokens));
    if (!r.ok) fail("warm-up request {} failed: {}", i + 1, r.error);
  }
  probe.close();
  std::printf("server %s, model %s | %d requests per level, ~%d prompt tokens (%d words), %d output tokens, "
              "temperature %g, ITL per %s; times in ms\n\n",
              a.server.c_str(), w.model().c_str(), a.requests, a.prompt_tokens, words, a.max_tokens, a.temperature,
              a.no_logprobs ? "delta" : "token");
  print_header();
  int failed = 0;
  for (int c : a.concurrency) {
    const LevelResult level = run_level(a, c, words);
    print_row(level);
    for (const RequestResult& r : level.requests) failed += r.ok ? 0 : 1;
    failed += a.requests - static_cast<int>(level.requests.size());
  }
  return failed == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("shardlm load benchmark: throughput and latency of a running `shardlm serve` at several concurrency levels");
  BenchArgs a;
  app.add_option("--server", a.server, "Server address HOST:PORT of the TCP client protocol")->required();
  app.add_option("--api-key", a.api_key, "API key (when the server requires one)");
  app.add_option("--concurrency", a.concurrency, "Concurrency levels, comma separated (clients sending at once)")
      ->delimiter(',');
  app.add_option("--requests", a.requests, "Requests per concurrency level")->check(CLI::PositiveNumber);
  app.add_option("--prompt-tokens", a.prompt_tokens, "Prompt length in tokens (approximate; prompts are made of words)")
      ->check(CLI::PositiveNumber);
  app.add_option("--max-tokens", a.max_tokens, "Tokens each request generates (end-of-sequence is ignored)")
      ->check(CLI::PositiveNumber);
  app.add_option("--temperature", a.temperature, "Sampling temperature (0 = greedy)")->check(CLI::NonNegativeNumber);
  app.add_option("--warmup", a.warmup, "Requests sent before measuring")->check(CLI::NonNegativeNumber);
  app.add_option("--seed", a.seed, "Seed of the prompts and of sampling");
  app.add_flag("--no-logprobs", a.no_logprobs,
               "Do not ask for log-probabilities; ITL is then measured between deltas instead of tokens");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shardlm_bench_load: error: %s\n", e.what());
    return 1;
  }
}
