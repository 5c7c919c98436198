// Registry of `shardlm` subcommands. Each cli/cmd_*.cc defines one subcommand and registers it with
// a static CommandRegistrar, so commands live in their own files and main.cc never lists them.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
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

// A --logit-bias entry "TOKEN=BIAS" (a token id and a bias in [-100, 100]): the option's validator,
// and the map of the entries given (a token given twice takes the last).
CLI::Validator logit_bias_entry();
std::map<int32_t, float> logit_bias_map(const std::vector<std::string>& entries);

// Exit status a subcommand callback may set (default 0); errors are thrown as shardlm::Error.
void set_exit_code(int code);
int exit_code();

}  // namespace shardlm::cli
