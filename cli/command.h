// Registry of `shardlm` subcommands. Each cli/cmd_*.cc defines one subcommand and registers it with
// a static CommandRegistrar, so commands live in their own files and main.cc never lists them.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace shardlm::cli {

// Adds one subcommand (options + callback) to the application.
using CommandSetup = std::function<void(CLI::App& app)>;

std::vector<CommandSetup>& command_registry();

struct CommandRegistrar {
  explicit CommandRegistrar(CommandSetup setup) { command_registry().push_back(std::move(setup)); }
};

// Checks that an integer option lies in [lo, hi]; the message names the bound that is broken
// ("must be >= 1 (got 0)"), not a floating-point range.
CLI::Validator integer_in(int64_t lo, int64_t hi);

// Exit status a subcommand callback may set (default 0); errors are thrown as shardlm::Error.
void set_exit_code(int code);
int exit_code();

}  // namespace shardlm::cli
