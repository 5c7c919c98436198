// `shardlm client`: talks to a running `shardlm serve` over the TCP client protocol. `generate` and
// `chat` stream the answer to stdout (reasoning to stderr) and a usage / timings summary to stderr;
// `models` and `health` print what the server reports. Ctrl-C cancels a running request.
#include <csignal>
#include <cstdio>
#include <cstdlib>

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
  std::vector<std::string> stop;
  bool ignore_eos = false;
  bool quiet = false;
  // Given on the command line? (absent ones take the server's defaults)
  CLI::Option* max_tokens_opt = nullptr;
  CLI::Option* temperature_opt = nullptr;
  CLI::Option* top_k_opt = nullptr;
  CLI::Option* top_p_opt = nullptr;
  CLI::Option* min_p_opt = nullptr;
  CLI::Option* seed_opt = nullptr;
};

struct ClientArgs {
  std::string server = "127.0.0.1:7070";
  std::string api_key;
  double timeout_s = 10;
  std::string prompt;   // generate
  std::string message;  // chat
  std::string system;
  bool thinking = false;
  GenerationArgs generate;
  GenerationArgs chat;
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

tcp::RequestOptions request_options(const GenerationArgs& a, bool thinking) {
  tcp::RequestOptions o;
  if (a.max_tokens_opt->count() > 0) o.max_tokens = a.max_tokens;
  if (a.temperature_opt->count() > 0) o.temperature = a.temperature;
  if (a.top_k_opt->count() > 0) o.top_k = a.top_k;
  if (a.top_p_opt->count() > 0) o.top_p = a.top_p;
  if (a.min_p_opt->count() > 0) o.min_p = a.min_p;
  if (a.seed_opt->count() > 0) o.seed = a.seed;
  o.stop = a.stop;
  o.ignore_eos = a.ignore_eos;
  o.enable_thinking = thinking;
  return o;
}

// Streams one request: content to stdout, reasoning to stderr, tool calls to stdout as one line each.
void run_streaming(const ClientArgs& a, bool chat) {
  const GenerationArgs& g = chat ? a.chat : a.generate;
  tcp::ClientOptions co;
  co.connect_timeout_s = a.timeout_s;
  co.client_name = "shardlm-cli";
  tcp::Client client(co);
  connect(client, a);
  g_interrupted = false;
  std::signal(SIGINT, on_sigint);
  client.set_interrupt(&g_interrupted);
  bool in_reasoning = false;
  bool ends_with_newline = true;
  const auto on_delta = [&](const client::Delta& d) {
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
  tcp::ClientOptions co;
  co.connect_timeout_s = a.timeout_s;
  co.client_name = "shardlm-cli";
  tcp::Client client(co);
  connect(client, a);
  for (const client::ModelInfo& m : client.models()) {
    std::printf("%s\tmax_context=%lld\n", m.name().c_str(), static_cast<long long>(m.max_context()));
  }
}

void run_health(const ClientArgs& a) {
  tcp::ClientOptions co;
  co.connect_timeout_s = a.timeout_s;
  co.client_name = "shardlm-cli";
  tcp::Client client(co);
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

void add_generation_options(CLI::App& cmd, GenerationArgs& a) {
  a.max_tokens_opt = cmd.add_option("--max-tokens", a.max_tokens, "Most tokens to generate (default: up to the end of the context)")
                         ->check(CLI::Range(1, 1 << 24));
  a.temperature_opt = cmd.add_option("--temperature", a.temperature, "Sampling temperature (0 = greedy; default 1)");
  a.top_k_opt = cmd.add_option("--top-k", a.top_k, "Top-k (0 = off)");
  a.top_p_opt = cmd.add_option("--top-p", a.top_p, "Top-p (1 = off)");
  a.min_p_opt = cmd.add_option("--min-p", a.min_p, "Min-p (0 = off)");
  a.seed_opt = cmd.add_option("--seed", a.seed, "Random seed");
  cmd.add_option("--stop", a.stop, "Stop string (repeat for several; at most 16)");
  cmd.add_flag("--ignore-eos", a.ignore_eos, "Keep generating after end-of-sequence tokens");
  cmd.add_flag("-q,--quiet", a.quiet, "No usage / timings summary on stderr");
}

CommandRegistrar reg([](CLI::App& app) {
  auto a = std::make_shared<ClientArgs>();
  CLI::App* cmd = app.add_subcommand("client", "Talk to a running `shardlm serve` over the TCP client protocol");
  cmd->add_option("--server", a->server, "Server address HOST:PORT (default 127.0.0.1:7070)");
  cmd->add_option("--api-key", a->api_key, "API key (default: the SHARDLM_API_KEY environment variable)");
  cmd->add_option("--timeout", a->timeout_s, "Seconds to wait for the connection and handshake")
      ->check(CLI::Range(0.1, 3600.0));
  cmd->require_subcommand(1);

  CLI::App* gen = cmd->add_subcommand("generate", "Complete a prompt; streams the text to stdout");
  gen->add_option("--prompt", a->prompt, "Prompt text")->required();
  add_generation_options(*gen, a->generate);
  gen->callback([a] { run_streaming(*a, /*chat=*/false); });

  CLI::App* chat = cmd->add_subcommand("chat", "Send one user message in the chat format; streams the answer to stdout");
  chat->add_option("--message", a->message, "The user's message")->required();
  chat->add_option("--system", a->system, "System message");
  chat->add_flag("--enable-thinking", a->thinking, "Let the model think first (the reasoning goes to stderr)");
  add_generation_options(*chat, a->chat);
  chat->callback([a] { run_streaming(*a, /*chat=*/true); });

  cmd->add_subcommand("models", "List the served models")->callback([a] { run_models(*a); });
  cmd->add_subcommand("health", "Show the server's state (exit 1 when it is not serving)")->callback([a] { run_health(*a); });
});

}  // namespace
}  // namespace shardlm::cli
