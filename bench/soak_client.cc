// Soak client for a running `shardlm serve` (TCP client protocol): C client threads, each on its own
// connection, send requests back to back for D seconds with mixed prompt lengths and lengths to
// generate, and mix in the ways clients go away: a request cancelled after a few tokens, a connection
// dropped in the middle of a stream (then a new one), and a request refused for an invalid field.
// Every outcome is checked: a completed request brings its tokens and a finish reason, a cancelled one
// finishes as cancelled (or completes first), the invalid one gets ERROR_INVALID_REQUEST. Anything else
// (an error frame, a broken connection, a timeout) is an unexpected error. Prints a progress line every
// --report seconds and a summary; exits 1 when there was any unexpected error.
// Usage: shardlm_soak --server HOST:PORT [--clients 64] [--seconds 600]
#include <algorithm>
#include <atomic>
#include <chrono>
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

struct SoakArgs {
  std::string server;
  std::string api_key;
  int clients = 64;
  double seconds = 600;
  double report_s = 30;
  int max_prompt_words = 300;
  int max_tokens = 48;
  uint64_t seed = 1;
  double message_timeout_s = 30;  // a request that gets no message for this long is an unexpected error
};

struct Counters {
  std::atomic<int64_t> completed{0}, cancelled{0}, disconnected{0}, refused{0}, tokens{0}, unexpected{0};
};

std::mutex g_log_mutex;
std::vector<std::string> g_errors;  // the first unexpected errors, for the summary

void unexpected(Counters& c, const std::string& what) {
  ++c.unexpected;
  std::lock_guard<std::mutex> lock(g_log_mutex);
  if (g_errors.size() < 20) g_errors.push_back(what);
}

std::string make_prompt(std::mt19937_64& rng, int words) {
  static const char* kWords[] = {"river", "stone", "light", "market", "garden", "winter", "engine", "letter",
                                 "quiet", "morning", "paper", "window", "silver", "island", "story", "number"};
  std::string s;
  for (int i = 0; i < words; ++i) {
    if (i) s += ' ';
    s += kWords[rng() % std::size(kWords)];
  }
  return s;
}

// Waits for the end of request `id` (its Finish or Error), counting the tokens of its deltas.
// Returns the final message, or nullopt on timeout.
std::optional<client::ServerMessage> wait_end(tcp::Client& client, uint64_t id, int64_t& tokens, double timeout_s) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
  for (;;) {
    const double left = std::chrono::duration<double>(deadline - Clock::now()).count();
    if (left <= 0) return std::nullopt;
    std::optional<client::ServerMessage> m = client.receive_for(id, left);
    if (!m) return std::nullopt;
    if (m->has_delta()) {
      tokens += std::max(1, m->delta().logprobs_size());
      continue;
    }
    if (m->has_finish() || m->has_error()) return m;
  }
}

void client_thread(const SoakArgs& a, int index, Clock::time_point end, Counters& c) {
  std::mt19937_64 rng(a.seed * 1000003 + static_cast<uint64_t>(index));
  const auto [host, port] = tcp::parse_host_port(a.server);
  std::unique_ptr<tcp::Client> client;
  auto connect = [&] {
    client = std::make_unique<tcp::Client>();
    client->connect(host, port, a.api_key);
  };
  while (Clock::now() < end) {
    try {
      if (!client) connect();
      const int action = static_cast<int>(rng() % 100);
      tcp::RequestOptions o;
      o.max_tokens = 1 + static_cast<int>(rng() % a.max_tokens);
      o.temperature = (rng() % 2) ? 0.0f : 0.8f;
      o.seed = rng();
      o.top_logprobs = 0;  // one log-probability per token: tokens can be counted
      const std::string prompt = make_prompt(rng, 1 + static_cast<int>(rng() % a.max_prompt_words));
      if (action < 5) {
        // Invalid: refused with ERROR_INVALID_REQUEST, the connection stays usable.
        o.max_tokens = 0;
        try {
          client->generate(prompt, o, [](const client::Delta&) {});
          unexpected(c, "a request with max_tokens 0 was accepted");
        } catch (const tcp::ServerError& e) {
          if (e.code() == client::ERROR_INVALID_REQUEST) {
            ++c.refused;
          } else {
            unexpected(c, fmt::format("invalid request answered with {}: {}", static_cast<int>(e.code()), e.message()));
          }
        }
        continue;
      }
      if (action < 75) {
        int64_t tokens = 0;
        const client::Finish f = client->generate(prompt, o, [&](const client::Delta& d) { tokens += d.logprobs_size(); });
        // An end-of-sequence token counts in the usage but has no text, so no delta.
        const int64_t usage = f.usage().completion_tokens();
        const bool counted = tokens == usage || (f.finish_reason() == client::FINISH_REASON_STOP && tokens + 1 == usage);
        if (usage < 1 || !counted) {
          unexpected(c, fmt::format("completed with {} tokens in the deltas, {} in the usage", tokens, f.usage().completion_tokens()));
        } else {
          ++c.completed;
          c.tokens += tokens;
        }
        continue;
      }
      o.max_tokens = std::max(*o.max_tokens, 16);
      client::GenerateRequest request = tcp::Client::make_request(o);
      request.set_prompt(prompt);
      const uint64_t id = client->send_generate(request);
      // Read a few messages first (the first tokens), then go away.
      const int reads = static_cast<int>(rng() % 3);
      int64_t tokens = 0;
      bool ended = false;
      for (int i = 0; i < reads; ++i) {
        std::optional<client::ServerMessage> m = client->receive_for(id, a.message_timeout_s);
        if (!m) {
          unexpected(c, fmt::format("no message within {} s", a.message_timeout_s));
          break;
        }
        if (m->has_error()) unexpected(c, fmt::format("error while streaming: {}", m->error().message()));
        if (m->has_finish() || m->has_error()) {
          ended = true;
          break;
        }
      }
      if (ended) {
        ++c.completed;
      } else if (action < 88) {
        client->send_cancel(id);
        std::optional<client::ServerMessage> m = wait_end(*client, id, tokens, 2 * a.message_timeout_s);
        if (!m) {
          unexpected(c, fmt::format("a cancelled request did not end within {} s", 2 * a.message_timeout_s));
          client.reset();
        } else if (m->has_error()) {
          unexpected(c, fmt::format("a cancelled request got an error: {}", m->error().message()));
        } else {
          ++c.cancelled;
        }
      } else {
        client->close();  // the server must cancel the request and free its KV blocks
        client.reset();
        ++c.disconnected;
      }
    } catch (const std::exception& e) {
      unexpected(c, e.what());
      client.reset();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
}

int run(const SoakArgs& a) {
  Counters c;
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(a.seconds));
  std::vector<std::thread> threads;
  for (int i = 0; i < a.clients; ++i) threads.emplace_back(client_thread, std::cref(a), i, end, std::ref(c));
  auto report = [&](const char* what) {
    const double t = std::chrono::duration<double>(Clock::now() - start).count();
    std::printf("%s t=%.0fs completed %lld cancelled %lld disconnected %lld refused %lld tokens %lld unexpected %lld\n", what, t,
                static_cast<long long>(c.completed), static_cast<long long>(c.cancelled), static_cast<long long>(c.disconnected),
                static_cast<long long>(c.refused), static_cast<long long>(c.tokens), static_cast<long long>(c.unexpected));
    std::fflush(stdout);
  };
  auto next = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(a.report_s));
  while (Clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    if (Clock::now() >= next) {
      report("soak");
      next += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(a.report_s));
    }
  }
  for (auto& t : threads) t.join();
  report("soak done");
  for (const std::string& e : g_errors) std::printf("unexpected: %s\n", e.c_str());
  const bool mixed = c.completed > 0 && c.cancelled > 0 && c.disconnected > 0 && c.refused > 0;
  if (!mixed) std::printf("not every kind of client behaviour happened (too short a run?)\n");
  return c.unexpected == 0 && mixed ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("shardlm soak client: many clients, mixed requests, cancellations and disconnects");
  SoakArgs a;
  app.add_option("--server", a.server, "Server address HOST:PORT of the TCP client protocol")->required();
  app.add_option("--api-key", a.api_key, "API key (when the server requires one)");
  app.add_option("--clients", a.clients, "Concurrent clients")->check(CLI::Range(1, 4096));
  app.add_option("--seconds", a.seconds, "Duration")->check(CLI::PositiveNumber);
  app.add_option("--report", a.report_s, "Seconds between progress lines")->check(CLI::PositiveNumber);
  app.add_option("--max-prompt-words", a.max_prompt_words, "Longest prompt in words")->check(CLI::Range(1, 100000));
  app.add_option("--max-tokens", a.max_tokens, "Most tokens a request generates")->check(CLI::Range(1, 100000));
  app.add_option("--seed", a.seed, "Seed of the request mix");
  app.add_option("--message-timeout", a.message_timeout_s,
                 "Seconds a running request may go without a message before it counts as an unexpected error")
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  try {
    return run(a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shardlm_soak: error: %s\n", e.what());
    return 2;
  }
}
