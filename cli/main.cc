// The `shardlm` binary: parses the command line and runs one registered subcommand.
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
