// `shardlm generate`: generates text from a prompt and streams it to stdout; runs in this process or,
// under mpirun, on the worker ranks, through the same scheduler and text service as `serve`.
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <mutex>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "cli/command.h"
#include "cli/local_model.h"
#include "common/error.h"
#include "coordinator/scheduler.h"
#include "coordinator/text_service.h"
#include "model/chat_template.h"
#include "model/generation_defaults.h"
#include "model/tokenizer.h"

namespace shardlm::cli {
namespace {

struct GenerateArgs {
  LocalModelOptions model;
  std::string prompt;
  std::string prompt_file;
  std::string system;
  bool chat = false;
  bool thinking = false;
  int max_tokens = 128;
  SamplingParams sampling;
  TextRequest::SamplingGiven sampling_given;  // the sampling options on the command line
  std::string generation_config = "auto";
  std::vector<std::string> stop;
  std::vector<std::string> logit_bias;  // TOKEN=BIAS
  int min_tokens = 0;
  bool include_stop = false;
  int prompt_logprobs = -1;
  std::vector<std::string> guided_choices;
  bool json_object = false;
  bool show_stats = true;
};

// Prints deltas as they come (reasoning in brackets on stderr) and waits for the end.
class PrintingObserver final : public TextObserver {
 public:
  void on_delta(const TextDelta& d) override {
    if (d.prompt_logprobs) print_prompt_logprobs(*d.prompt_logprobs);
    if (!d.reasoning.empty()) std::fprintf(stderr, "%s", d.reasoning.c_str());
    std::fwrite(d.content.data(), 1, d.content.size(), stdout);
    for (const ChatToolCall& c : d.tool_calls) std::printf("\n[tool call] %s %s\n", c.name.c_str(), c.arguments.dump().c_str());
    std::fflush(stdout);
  }
  void on_finish(const TextFinish& f) override {
    std::lock_guard<std::mutex> lock(mutex_);
    finish_ = f;
    done_ = true;
    cv_.notify_all();
  }
  TextFinish wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [&] { return done_; });
    return finish_;
  }

  // --prompt-logprobs: a line per prompt token on stderr: "[prompt] POSITION ID LOGPROB RANK" and the
  // best tokens there as ID:LOGPROB (the first token has none: "-").
  static void print_prompt_logprobs(const std::vector<PromptTokenLogprob>& prompt) {
    for (size_t i = 0; i < prompt.size(); ++i) {
      const PromptTokenLogprob& p = prompt[i];
      if (i == 0) {
        std::fprintf(stderr, "[prompt] 0 %d - -\n", p.id);
        continue;
      }
      std::string line = fmt::format("[prompt] {} {} {:.6f} {}", i, p.id, p.logprob, p.rank);
      for (const PromptTokenLogprob::Alternative& t : p.top) line += fmt::format(" {}:{:.6f}", t.id, t.logprob);
      std::fprintf(stderr, "%s\n", line.c_str());
    }
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  TextFinish finish_;
};

void run_generate(GenerateArgs a) {
  validate_sampling(a.sampling);
  if (!a.prompt_file.empty()) {
    std::ifstream in(a.prompt_file, std::ios::binary);
    if (!in) fail("--prompt-file {}: cannot be read", a.prompt_file);
    a.prompt.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const Tokenizer tokenizer = local_model_tokenizer(a.model);
  TextRequest request;
  request.chat = a.chat;
  if (a.chat) {
    request.messages = nlohmann::json::array();
    if (!a.system.empty()) request.messages.push_back({{"role", "system"}, {"content", a.system}});
    request.messages.push_back({{"role", "user"}, {"content", a.prompt}});
    request.enable_thinking = a.thinking;
  } else {
    request.prompt = a.prompt;
  }
  request.max_tokens = a.max_tokens;
  request.sampling = a.sampling;
  request.sampling_given = a.sampling_given;
  request.stop = a.stop;
  request.logit_bias = logit_bias_map(a.logit_bias);
  request.min_tokens = a.min_tokens;
  request.include_stop_str_in_output = a.include_stop;
  request.prompt_logprobs = a.prompt_logprobs;
  if (!a.guided_choices.empty() && a.json_object) fail("--guided-choice and --json-object exclude each other");
  if (!a.guided_choices.empty()) {
    request.guided.kind = TextRequest::Guided::Kind::kChoice;
    request.guided.choices = a.guided_choices;
  } else if (a.json_object) {
    request.guided.kind = TextRequest::Guided::Kind::kJsonObject;
  }
  const GenerationDefaults defaults = load_generation_defaults(a.generation_config, a.model.model_dir);

  // Size the KV cache for this one request: render and tokenize the prompt first.
  const ModelConfig config = local_model_config(a.model);
  const int64_t prompt_size = [&] {
    ChatOptions co;
    co.enable_thinking = a.thinking;
    co.empty_thought_block = !config.has_ple();
    return static_cast<int64_t>(a.chat ? tokenizer.encode(render_chat(request.messages, co), false).size()
                                       : tokenizer.encode(a.prompt, true).size());
  }();
  std::unique_ptr<StepEngine> engine = open_engine(engine_options(a.model, prompt_size + a.max_tokens));
  if (!engine) return;  // a worker rank of an MPI job
  spdlog::info("{}", engine->description);
  SchedulerOptions so;
  so.max_step_tokens = a.model.max_chunk;
  Scheduler scheduler(*engine, so);
  TextService service(scheduler, tokenizer, engine->config(), "local");
  service.set_generation_defaults(defaults);
  if (!defaults.empty()) spdlog::info("sampling defaults (generation_config.json; the options given win): {}", defaults.describe());
  auto observer = std::make_shared<PrintingObserver>();
  TextFinish f;
  try {
    service.submit(request, observer);
    f = observer->wait();
  } catch (const std::exception& e) {
    engine->abort(e.what());  // under MPI: end the job with the reason (a single process goes on)
    throw;
  }
  std::printf("\n");
  std::fflush(stdout);
  scheduler.stop();
  if (f.finish_reason == "error") fail("generation failed: {}", f.error);
  if (a.show_stats) {
    const double decode_rate = f.completion_tokens > 1 ? (f.completion_tokens - 1) / std::max(f.timings.decode_s, 1e-9) : 0.0;
    std::fprintf(stderr,
                 "[%lld prompt tokens, prefill %.1f tok/s | %lld generated, decode %.2f tok/s | finish: %s]\n",
                 static_cast<long long>(f.prompt_tokens), f.prompt_tokens / std::max(f.timings.prefill_s, 1e-9),
                 static_cast<long long>(f.completion_tokens), decode_rate, f.finish_reason.c_str());
  }
}

CommandRegistrar reg([](CLI::App& app) {
  auto a = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text from a prompt (streams to stdout)");
  add_local_model_options(*cmd, a->model);
  auto* prompt = cmd->add_option("--prompt", a->prompt, "Prompt text");
  auto* prompt_file = cmd->add_option("--prompt-file", a->prompt_file, "Read the prompt text from a file");
  prompt->excludes(prompt_file);
  prompt_file->excludes(prompt);
  cmd->add_flag("--chat", a->chat, "Wrap the prompt as a user turn of the Gemma 4 chat format");
  cmd->add_option("--system", a->system, "System message (with --chat)");
  cmd->add_flag("--enable-thinking", a->thinking, "Switch thinking on (with --chat)");
  cmd->add_option("--max-tokens", a->max_tokens, "Most tokens to generate")->check(CLI::Range(1, 1 << 20));
  auto* temperature = cmd->add_option("--temperature", a->sampling.temperature, "Sampling temperature (0 = greedy; default: the model's, else 1)");
  auto* top_k = cmd->add_option("--top-k", a->sampling.top_k, "Top-k (0 = off; default: the model's, else off)");
  auto* top_p = cmd->add_option("--top-p", a->sampling.top_p, "Top-p (1 = off; default: the model's, else off)");
  auto* min_p = cmd->add_option("--min-p", a->sampling.min_p, "Min-p (0 = off; default: the model's, else off)");
  cmd->add_option("--generation-config", a->generation_config,
                  "Sampling defaults for the options not given: auto (the model folder's generation_config.json), none, "
                  "or a generation_config.json file or its folder")
      ->capture_default_str();
  cmd->add_option("--seed", a->sampling.seed, "Random seed");
  cmd->add_option("--presence-penalty", a->sampling.presence_penalty, "Minus this on every token already generated (-2..2; 0 = off)");
  cmd->add_option("--frequency-penalty", a->sampling.frequency_penalty,
                  "Minus this times each token's count in the output (-2..2; 0 = off)");
  auto* repetition = cmd->add_option("--repetition-penalty", a->sampling.repetition_penalty,
                                     "Divides positive logits of the tokens in prompt or output, multiplies negative ones (> 0; 1 = "
                                     "off; default: the model's, else 1)");
  cmd->add_option("--stop", a->stop, "Stop string (repeatable)");
  cmd->add_option("--logit-bias", a->logit_bias, "TOKEN=BIAS: add BIAS (-100..100) to the token's logit (repeatable)")
      ->check(logit_bias_entry());
  cmd->add_option("--min-tokens", a->min_tokens, "No end of sequence and no stop string before this many tokens")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--include-stop-str-in-output", a->include_stop, "End the output with the stop string that matched");
  cmd->add_option("--prompt-logprobs", a->prompt_logprobs,
                  "Print each prompt token's log-probability and rank, with the N best tokens at its place, to stderr "
                  "('[prompt] POSITION ID LOGPROB RANK ID:LOGPROB...')")
      ->check(CLI::Range(0, 20));
  cmd->add_option("--guided-choice", a->guided_choices, "Guided decoding: the output is exactly one of these (repeatable)");
  cmd->add_flag("--json-object", a->json_object, "Guided decoding: the output is a JSON object");
  cmd->callback([a, prompt, prompt_file, temperature, top_k, top_p, min_p, repetition] {
    if (prompt->count() + prompt_file->count() == 0) fail("generate needs --prompt or --prompt-file");
    a->sampling_given = {temperature->count() > 0, top_k->count() > 0, top_p->count() > 0, min_p->count() > 0,
                         repetition->count() > 0};
    run_generate(*a);
  });
});

}  // namespace
}  // namespace shardlm::cli
