// `shardlm logits`: final logits of every position of a token sequence, written as a .npy file.
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include <spdlog/spdlog.h>

#include "cli/command.h"
#include "cli/local_model.h"
#include "common/error.h"
#include "common/npy.h"

namespace shardlm::cli {
namespace {

std::vector<int32_t> parse_token_list(const std::string& spec) {
  std::string text = spec;
  if (!spec.empty() && spec[0] == '@') {
    std::ifstream in(spec.substr(1));
    if (!in) fail("cannot read token file {}", spec.substr(1));
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  std::vector<int32_t> ids;
  std::string item;
  bool after_comma = true;  // a comma here would leave an empty item (also at the start)
  for (size_t i = 0; i <= text.size(); ++i) {
    const bool end = i == text.size();
    const char c = end ? ',' : text[i];
    if (c == ',' || c == '\n' || c == ' ' || c == '\r' || c == '\t') {
      if (item.empty()) {
        if (c == ',' && !end && after_comma) fail("--tokens: an empty item (two commas, or a comma first) in '{}'", text.substr(0, 80));
        after_comma = after_comma || c == ',';
        continue;
      }
      after_comma = c == ',';
      size_t used = 0;
      long long v = 0;
      try {
        v = std::stoll(item, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != item.size() || v < 0 || v > INT32_MAX) fail("bad token id '{}' in --tokens", item);
      ids.push_back(static_cast<int32_t>(v));
      item.clear();
    } else {
      item += c;
    }
  }
  if (ids.empty()) fail("--tokens holds no token ids");
  return ids;
}

struct LogitsArgs {
  LocalModelOptions model;
  std::string tokens;
  std::string out;
  int chunk = 0;
  int64_t last = 0;  // 0 = every position
  std::string dump_dir;
};

void run_logits(const LogitsArgs& a) {
  const std::vector<int32_t> ids = parse_token_list(a.tokens);
  LocalModelOptions mo = a.model;
  const int chunk = a.chunk > 0 ? a.chunk : static_cast<int>(ids.size());
  mo.max_chunk = std::min(mo.max_chunk, chunk);
  std::unique_ptr<StepEngine> engine = open_engine(engine_options(mo, static_cast<int64_t>(ids.size())));
  if (!engine) return;  // a worker rank of an MPI job
  spdlog::info("{}", engine->description);
  const int64_t vocab = engine->config().vocab_size;
  const size_t T = ids.size();
  if (static_cast<int64_t>(T) > engine->max_sequence_tokens()) {
    engine->shutdown();  // releases the workers of an MPI job
    fail("{} tokens exceed the context of {} positions (the model's max_position_embeddings, or --max-context)", T,
         engine->max_sequence_tokens());
  }
  const int seq = engine->new_sequence();
  const size_t keep_from = a.last > 0 && static_cast<size_t>(a.last) < T ? T - static_cast<size_t>(a.last) : 0;
  std::vector<float> all((T - keep_from) * vocab);
  std::vector<float> part;
  StepTraceFn trace;
  std::map<std::string, std::vector<float>> dumps;
  std::map<std::string, int64_t> dump_cols;
  if (!a.dump_dir.empty()) {
    trace = [&](const std::string& name, const float* data, int64_t rows, int64_t cols) {
      auto& v = dumps[name];
      v.insert(v.end(), data, data + rows * cols);
      dump_cols[name] = cols;
    };
  }
  for (size_t begin = 0; begin < ids.size(); begin += chunk) {
    const size_t end = std::min(ids.size(), begin + chunk);
    StepBatch batch;
    const bool wanted = end > keep_from;  // chunks before the kept rows produce no logits
    batch.add(seq, static_cast<int32_t>(begin), std::vector<int32_t>(ids.begin() + begin, ids.begin() + end), wanted, false);
    engine->logits(batch, part, trace);
    for (size_t t = std::max(begin, keep_from); t < end && wanted; ++t) {
      std::copy_n(part.begin() + (t - begin) * vocab, vocab, all.begin() + (t - keep_from) * vocab);
    }
  }
  write_npy(a.out, {static_cast<int64_t>(T - keep_from), vocab}, all.data());
  for (const auto& [name, data] : dumps) {
    const int64_t cols = dump_cols[name];
    write_npy(a.dump_dir + "/" + name + ".npy", {static_cast<int64_t>(data.size()) / cols, cols}, data.data());
  }
  engine->shutdown();
  std::printf("wrote %s [%zu, %lld]\n", a.out.c_str(), T - keep_from, static_cast<long long>(vocab));
}

CommandRegistrar reg([](CLI::App& app) {
  auto args = std::make_shared<LogitsArgs>();
  CLI::App* cmd = app.add_subcommand("logits", "Write the final logits of every position as float32 [T, vocab] .npy");
  add_local_model_options(*cmd, args->model);
  cmd->add_option("--tokens", args->tokens, "Token ids: 2,45,100 or @FILE")->required();
  cmd->add_option("--out", args->out, "Output .npy file")->required();
  cmd->add_option("--chunk", args->chunk, "Feed the tokens N at a time through the KV cache (default: one chunk)")
      ->check(integer_in(1, int64_t{1} << 30));
  cmd->add_option("--last", args->last, "Write only the logits of the last N positions")->check(integer_in(1, int64_t{1} << 30));
  cmd->add_option("--dump-dir", args->dump_dir, "Write every named intermediate (L3.attn_out, ...) as .npy here");
  cmd->callback([args] { run_logits(*args); });
});

}  // namespace
}  // namespace shardlm::cli
