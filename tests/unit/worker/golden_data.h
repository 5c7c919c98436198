// Access to the golden checkpoints and prompts in tests/data for the engine tests.
#pragma once

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace shardlm::golden {

inline std::string golden_dir(const std::string& model) { return std::string(SHARDLM_TEST_DATA) + "/" + model; }

// A comma-separated line of token ids (tokens.txt, tokens_long.txt).
inline std::vector<int32_t> read_golden_tokens(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::vector<int32_t> ids;
  std::string item;
  while (std::getline(ss, item, ',')) ids.push_back(std::stoi(item));
  return ids;
}

}  // namespace shardlm::golden
