// `shardlm tokenize` / `shardlm detokenize`: text to token ids and back with a model's tokenizer.
// Hidden batch options (--batch-file) process one JSON value per line in a single process; the
// tokenizer parity test uses them to compare thousands of strings against the reference library.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "cli/command.h"
#include "common/error.h"
#include "model/tokenizer.h"

namespace shardlm::cli {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

Tokenizer load_tokenizer(const std::string& path, bool timing) {
  const auto start = Clock::now();
  Tokenizer tokenizer = Tokenizer::load(path);
  if (timing) {
    std::fprintf(stderr, "tokenizer: loaded %s (%d tokens) in %.3f s\n", path.c_str(), tokenizer.vocab_size(),
                 seconds_since(start));
  }
  return tokenizer;
}

// Calls fn(line_number, json_value) for every non-empty line of a JSON-lines file.
template <typename Fn>
void for_each_json_line(const std::string& path, Fn&& fn) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open batch file {}", path);
  std::string line;
  size_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty()) continue;
    nlohmann::json value;
    try {
      value = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail("{} line {}: invalid JSON: {}", path, number, e.what());
    }
    try {
      fn(number, value);
    } catch (const Error& e) {
      fail("{} line {}: {}", path, number, e.what());
    }
  }
}

void write_stdout(const std::string& text) {
  if (!text.empty() && std::fwrite(text.data(), 1, text.size(), stdout) != text.size()) fail("cannot write output");
}

std::string join_ids(const std::vector<int32_t>& ids) {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(ids[i]);
  }
  return out;
}

// "2,45, 100" -> ids; throws naming the bad item.
std::vector<int32_t> parse_id_list(const std::string& spec) {
  std::vector<int32_t> ids;
  size_t pos = 0;
  while (pos <= spec.size()) {
    const size_t comma = std::min(spec.find(',', pos), spec.size());
    std::string item = spec.substr(pos, comma - pos);
    const size_t b = item.find_first_not_of(" \t");
    const size_t e = item.find_last_not_of(" \t");
    item = b == std::string::npos ? "" : item.substr(b, e - b + 1);
    if (item.empty()) {
      if (spec.find_first_not_of(" \t") != std::string::npos) fail("--ids: empty item in '{}'", spec);
    } else {
      size_t used = 0;
      long long v = 0;
      try {
        v = std::stoll(item, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != item.size() || v < INT32_MIN || v > INT32_MAX) fail("--ids: '{}' is not a token id", item);
      ids.push_back(static_cast<int32_t>(v));
    }
    pos = comma + 1;
  }
  return ids;
}

std::vector<int32_t> json_id_array(const nlohmann::json& value) {
  if (!value.is_array()) fail("expected a JSON array of token ids, not {}", value.type_name());
  std::vector<int32_t> ids;
  ids.reserve(value.size());
  for (const auto& v : value) {
    if (!v.is_number_integer() || v.get<int64_t>() < INT32_MIN || v.get<int64_t>() > INT32_MAX) {
      fail("{} is not a token id", v.dump());
    }
    ids.push_back(v.get<int32_t>());
  }
  return ids;
}

std::string decode_ids(const Tokenizer& tokenizer, const std::vector<int32_t>& ids, bool skip_special, bool streaming) {
  if (!streaming) return tokenizer.decode(ids, skip_special);
  StreamingDetokenizer detok(tokenizer, skip_special);
  std::string text;
  for (const int32_t id : ids) text += detok.push(id);
  return text + detok.flush();
}

struct TokenizeArgs {
  std::string tokenizer;
  std::string text;
  std::string batch_file;
  bool no_bos = false;
  bool timing = false;
};

void run_tokenize(const TokenizeArgs& a, bool have_text) {
  if (have_text == !a.batch_file.empty()) fail("tokenize needs exactly one of --text and --batch-file");
  const Tokenizer tokenizer = load_tokenizer(a.tokenizer, a.timing);
  const auto start = Clock::now();
  size_t bytes = 0, tokens = 0;
  if (have_text) {
    const std::vector<int32_t> ids = tokenizer.encode(a.text, !a.no_bos);
    bytes = a.text.size();
    tokens = ids.size();
    write_stdout(join_ids(ids) + "\n");
  } else {
    std::string out;
    for_each_json_line(a.batch_file, [&](size_t, const nlohmann::json& value) {
      if (!value.is_string()) fail("expected a JSON string, not {}", value.type_name());
      const std::string& text = value.get_ref<const std::string&>();
      const std::vector<int32_t> ids = tokenizer.encode(text, !a.no_bos);
      bytes += text.size();
      tokens += ids.size();
      out += nlohmann::json(ids).dump();
      out += '\n';
    });
    write_stdout(out);
  }
  if (a.timing) {
    const double s = seconds_since(start);
    std::fprintf(stderr, "tokenizer: encoded %zu bytes into %zu tokens in %.3f s (%.1f MB/s)\n", bytes, tokens, s,
                 s > 0 ? bytes / s / 1e6 : 0.0);
  }
}

struct DetokenizeArgs {
  std::string tokenizer;
  std::string ids;
  std::string batch_file;
  bool skip_special = false;
  bool streaming = false;
  bool timing = false;
};

void run_detokenize(const DetokenizeArgs& a, bool have_ids) {
  if (have_ids == !a.batch_file.empty()) fail("detokenize needs exactly one of --ids and --batch-file");
  const std::vector<int32_t> single = have_ids ? parse_id_list(a.ids) : std::vector<int32_t>{};
  const Tokenizer tokenizer = load_tokenizer(a.tokenizer, a.timing);
  if (have_ids) {
    write_stdout(decode_ids(tokenizer, single, a.skip_special, a.streaming) + "\n");
    return;
  }
  std::string out;
  for_each_json_line(a.batch_file, [&](size_t, const nlohmann::json& value) {
    out += nlohmann::json(decode_ids(tokenizer, json_id_array(value), a.skip_special, a.streaming)).dump();
    out += '\n';
  });
  write_stdout(out);
}

CommandRegistrar tokenize_reg([](CLI::App& app) {
  auto args = std::make_shared<TokenizeArgs>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Print the token ids of a text (comma-separated)");
  cmd->add_option("--tokenizer", args->tokenizer, "tokenizer.json or a model folder holding one")->required();
  CLI::Option* text = cmd->add_option("--text", args->text, "Text to encode");
  cmd->add_flag("--no-bos", args->no_bos, "Do not add the BOS token");
  cmd->add_option("--batch-file", args->batch_file, "JSON lines of strings; print one JSON id array per line")
      ->group("");
  cmd->add_flag("--timing", args->timing, "Print load / encode times to stderr")->group("");
  cmd->callback([args, text] { run_tokenize(*args, text->count() > 0); });
});

CommandRegistrar detokenize_reg([](CLI::App& app) {
  auto args = std::make_shared<DetokenizeArgs>();
  CLI::App* cmd = app.add_subcommand("detokenize", "Print the text of comma-separated token ids");
  cmd->add_option("--tokenizer", args->tokenizer, "tokenizer.json or a model folder holding one")->required();
  CLI::Option* ids = cmd->add_option("--ids", args->ids, "Token ids: 2,45,100");
  cmd->add_flag("--skip-special", args->skip_special, "Leave out special tokens (<bos>, <eos>, ...)");
  cmd->add_option("--batch-file", args->batch_file, "JSON lines of id arrays; print one JSON string per line")
      ->group("");
  cmd->add_flag("--streaming", args->streaming, "Decode through the streaming detokenizer")->group("");
  cmd->add_flag("--timing", args->timing, "Print the load time to stderr")->group("");
  cmd->callback([args, ids] { run_detokenize(*args, ids->count() > 0); });
});

}  // namespace
}  // namespace shardlm::cli
