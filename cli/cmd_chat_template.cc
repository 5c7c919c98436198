// `shardlm chat-template`: renders an OpenAI-style conversation into the Gemma 4 prompt text and
// prints it exactly (no newline added).
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>

#include "cli/command.h"
#include "common/error.h"
#include "common/json_limits.h"
#include "model/chat_template.h"

namespace shardlm::cli {
namespace {

struct ChatTemplateArgs {
  std::string messages_file;
  std::string tools_file;
  bool enable_thinking = false;
  bool no_generation_prompt = false;
  bool no_empty_thought = false;
  bool no_fold_tool_messages = false;
};

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read {}", path);
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return parse_json_limited(ss.str());
  } catch (const nlohmann::json::parse_error& e) {
    fail("{} is not valid JSON: {}", path, e.what());
  }
}

void run_chat_template(const ChatTemplateArgs& a) {
  nlohmann::json doc = read_json_file(a.messages_file);
  ChatOptions options;
  nlohmann::json messages;
  if (doc.is_object()) {  // an OpenAI request body: {messages, tools, ...}
    if (!doc.contains("messages")) fail("{} is an object without a \"messages\" array", a.messages_file);
    messages = std::move(doc["messages"]);
    if (doc.contains("tools")) options.tools = std::move(doc["tools"]);
  } else {
    messages = std::move(doc);
  }
  if (!a.tools_file.empty()) options.tools = read_json_file(a.tools_file);
  options.enable_thinking = a.enable_thinking;
  options.add_generation_prompt = !a.no_generation_prompt;
  options.empty_thought_block = !a.no_empty_thought;
  options.fold_tool_messages = !a.no_fold_tool_messages;
  const std::string prompt = render_chat(messages, options);
  std::fwrite(prompt.data(), 1, prompt.size(), stdout);
  std::fflush(stdout);
}

CommandRegistrar reg([](CLI::App& app) {
  auto args = std::make_shared<ChatTemplateArgs>();
  CLI::App* cmd = app.add_subcommand("chat-template", "Print the Gemma 4 prompt of an OpenAI-style conversation");
  cmd->add_option("--messages", args->messages_file,
                  "JSON file: the messages array, or a request body {messages, tools}")
      ->required();
  cmd->add_option("--tools", args->tools_file, "JSON file: OpenAI-style tool list");
  cmd->add_flag("--enable-thinking", args->enable_thinking, "Thinking mode (<|think|> in the system turn)");
  cmd->add_flag("--no-generation-prompt", args->no_generation_prompt, "Do not open the model turn at the end");
  cmd->add_flag("--no-empty-thought", args->no_empty_thought,
                "No empty thought block after the generation prompt (E2B / E4B templates)");
  cmd->add_flag("--no-fold-tool-messages", args->no_fold_tool_messages,
                "Render `tool` messages as \"<|turn>tool\" turns, as the bare template does");
  cmd->callback([args] { run_chat_template(*args); });
});

}  // namespace
}  // namespace shardlm::cli
