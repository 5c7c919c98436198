// The `shardlm` binary: parses the command line and runs one registered subcommand.
#include <charconv>
#include <cstdio>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "cli/command.h"
#include "common/error.h"
#include "common/version.h"

namespace shardlm::cli {

std::vector<CommandSetup>& command_registry() {
  static std::vector<CommandSetup> registry;
  return registry;
}

namespace {
int g_exit_code = 0;
}

void set_exit_code(int code) { g_exit_code = code; }
int exit_code() { return g_exit_code; }

CLI::Validator integer_in(int64_t lo, int64_t hi) {
  return CLI::Validator(
      [lo, hi](std::string& text) -> std::string {
        int64_t v = 0;
        if (!CLI::detail::lexical_cast(text, v)) return "must be an integer (got '" + text + "')";
        if (v < lo) return "must be >= " + std::to_string(lo) + " (got " + text + ")";
        if (v > hi) return "must be <= " + std::to_string(hi) + " (got " + text + ")";
        return {};
      },
      "INT in [" + std::to_string(lo) + " - " + std::to_string(hi) + "]");
}

namespace {

// The entry's token and bias, or an error message.
std::string parse_logit_bias_entry(const std::string& text, int32_t& token, float& bias) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos) return "must be TOKEN=BIAS (got '" + text + "')";
  const char* begin = text.data();
  const auto [end, ec] = std::from_chars(begin, begin + eq, token);
  if (ec != std::errc() || end != begin + eq || token < 0) return "TOKEN must be a token id (got '" + text.substr(0, eq) + "')";
  double b = 0.0;
  if (!CLI::detail::lexical_cast(text.substr(eq + 1), b) || !(b >= -100.0 && b <= 100.0)) {
    return "BIAS must be a number in [-100, 100] (got '" + text.substr(eq + 1) + "')";
  }
  bias = static_cast<float>(b);
  return {};
}

}  // namespace

CLI::Validator logit_bias_entry() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        int32_t token = 0;
        float bias = 0.0f;
        return parse_logit_bias_entry(text, token, bias);
      },
      "TOKEN=BIAS");
}

std::map<int32_t, float> logit_bias_map(const std::vector<std::string>& entries) {
  std::map<int32_t, float> out;
  for (const std::string& e : entries) {
    int32_t token = 0;
    float bias = 0.0f;
    const std::string error = parse_logit_bias_entry(e, token, bias);
    if (!error.empty()) fail("--logit-bias: {}", error);
    out[token] = bias;
  }
  return out;
}

}  // namespace shardlm::cli

int main(int argc, char** argv) {
  CLI::App app{"shardlm — Gemma 4 inference cluster for CPU machines"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("shardlm ") + shardlm::kVersion);
  spdlog::set_default_logger(spdlog::stderr_color_mt("shardlm"));  // stdout carries command output
  spdlog::set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
  for (auto& setup : shardlm::cli::command_registry()) setup(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const shardlm::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "shardlm: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "shardlm: internal error: %s\n", e.what());
    return 2;
  }
  return shardlm::cli::exit_code();
}
