#include "model/foreign_file.h"

#include <filesystem>
#include <fstream>

#include "common/error.h"

namespace shardlm {

std::string foreign_file_kind(std::string_view head) {
  if (head.rfind("version https://git-lfs.github.com/spec/", 0) == 0) {
    return "is a Git LFS pointer, not the file itself: the download fetched only the pointers (install git-lfs and run "
           "`git lfs pull` in the clone, or download with `huggingface-cli download`)";
  }
  if (head.rfind("GGUF", 0) == 0) {
    return "is a GGUF file (llama.cpp's format): shardlm loads the Hugging Face safetensors release (config.json, "
           "model*.safetensors, tokenizer.json)";
  }
  return {};
}

void check_not_foreign_text(std::string_view content, const std::string& path) {
  const std::string kind = foreign_file_kind(content.substr(0, 64));
  if (!kind.empty()) fail("{} {}", path, kind);
}

void check_not_foreign_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return;  // a FIFO must not block the open
  std::ifstream in(path, std::ios::binary);
  if (!in) return;
  char head[64] = {};
  in.read(head, sizeof(head));
  check_not_foreign_text(std::string_view(head, static_cast<size_t>(in.gcount())), path);
}

void check_not_gguf_folder(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(fs::path(dir) / "config.json", ec)) return;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    if (e.path().extension() == ".gguf") {
      fail("{}: no config.json in the model folder, which holds GGUF files ({}): shardlm loads the Hugging Face "
           "safetensors release (config.json, model*.safetensors, tokenizer.json)",
           dir, e.path().filename().string());
    }
  }
}

}  // namespace shardlm
