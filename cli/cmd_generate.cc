// `shardlm generate`: generates text from a prompt in this process and streams it to stdout.
#include <chrono>
#include <cstdio>

#include <spdlog/spdlog.h>

#include "cli/command.h"
#include "cli/local_model.h"
#include "common/error.h"
#include "coordinator/sampler.h"
#include "model/chat_template.h"
#include "model/tokenizer.h"

namespace shardlm::cli {
namespace {

struct GenerateArgs {
  LocalModelOptions model;
  std::string prompt;
  std::string system;
  bool chat = false;
  bool thinking = false;
  int max_tokens = 128;
  SamplingParams sampling;
  bool show_stats = true;
};

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

void run_generate(GenerateArgs a) {
  validate_sampling(a.sampling);
  const Tokenizer tokenizer = Tokenizer::load(a.model.model_dir);
  std::vector<int32_t> prompt_ids;
  if (a.chat) {
    nlohmann::json messages = nlohmann::json::array();
    if (!a.system.empty()) messages.push_back({{"role", "system"}, {"content", a.system}});
    messages.push_back({{"role", "user"}, {"content", a.prompt}});
    const ModelConfig config = load_model_config(a.model.model_dir);
    ChatOptions co;
    co.enable_thinking = a.thinking;
    co.empty_thought_block = !config.has_ple();  // E2B/E4B templates add no empty thought block
    prompt_ids = tokenizer.encode(render_chat(messages, co), /*add_bos=*/false);
  } else {
    prompt_ids = tokenizer.encode(a.prompt, /*add_bos=*/true);
  }
  std::unique_ptr<Engine> engine = open_engine(a.model, static_cast<int64_t>(prompt_ids.size()) + a.max_tokens);
  if (!engine) return;  // a worker rank of an MPI job
  const ModelConfig& config = engine->config();
  spdlog::info("{}", engine->description);
  const int64_t vocab = config.vocab_size;
  const int seq = engine->new_sequence();

  Sampler sampler(a.sampling);
  StreamingDetokenizer detok(tokenizer);
  std::vector<float> logits;
  auto t0 = std::chrono::steady_clock::now();
  StepBatch prefill;
  prefill.add(seq, 0, prompt_ids, false, true);
  engine->forward(prefill, logits);
  const double prefill_s = seconds_since(t0);
  int32_t position = static_cast<int32_t>(prompt_ids.size());
  int generated = 0;
  std::string finish = "length";
  auto t1 = std::chrono::steady_clock::now();
  while (generated < a.max_tokens) {
    const int32_t token = sampler.sample(logits.data(), vocab);
    ++generated;
    if (std::find(config.eos_token_ids.begin(), config.eos_token_ids.end(), token) != config.eos_token_ids.end()) {
      finish = "stop";
      break;
    }
    const std::string text = detok.push(token);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    if (generated == a.max_tokens) break;
    StepBatch step;
    step.add(seq, position++, {token}, false, true);
    engine->forward(step, logits);
  }
  const std::string rest = detok.flush();
  std::fwrite(rest.data(), 1, rest.size(), stdout);
  std::printf("\n");
  std::fflush(stdout);
  const double decode_s = seconds_since(t1);
  if (a.show_stats) {
    std::fprintf(stderr,
                 "[%zu prompt tokens, prefill %.1f tok/s | %d generated, decode %.2f tok/s | finish: %s]\n",
                 prompt_ids.size(), prompt_ids.size() / std::max(prefill_s, 1e-9), generated,
                 generated > 1 ? (generated - 1) / std::max(decode_s, 1e-9) : 0.0, finish.c_str());
  }
}

CommandRegistrar reg([](CLI::App& app) {
  auto a = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text from a prompt in this process (streams to stdout)");
  add_local_model_options(*cmd, a->model);
  cmd->add_option("--prompt", a->prompt, "Prompt text")->required();
  cmd->add_flag("--chat", a->chat, "Wrap the prompt as a user turn of the Gemma 4 chat format");
  cmd->add_option("--system", a->system, "System message (with --chat)");
  cmd->add_flag("--enable-thinking", a->thinking, "Switch thinking on (with --chat)");
  cmd->add_option("--max-tokens", a->max_tokens, "Most tokens to generate")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--temperature", a->sampling.temperature, "Sampling temperature (0 = greedy)");
  cmd->add_option("--top-k", a->sampling.top_k, "Top-k (0 = off)");
  cmd->add_option("--top-p", a->sampling.top_p, "Top-p (1 = off)");
  cmd->add_option("--min-p", a->sampling.min_p, "Min-p (0 = off)");
  cmd->add_option("--seed", a->sampling.seed, "Random seed");
  cmd->callback([a] { run_generate(*a); });
});

}  // namespace
}  // namespace shardlm::cli
