// Files that stand where a checkpoint's safetensors or JSON files should be but are something users
// often end up with instead: a Git LFS pointer (a clone made without git-lfs keeps only these
// ~130-byte text stubs) or a GGUF file (llama.cpp's format). Naming them turns a baffling parse error
// ("header length 2336927755350992246") into what to do.
#pragma once

#include <string>
#include <string_view>

namespace shardlm {

// A description of the file whose first bytes are `head` ("" when it is neither of the above).
std::string foreign_file_kind(std::string_view head);

// Fails naming `path` when foreign_file_kind recognises `content` (a file already read).
void check_not_foreign_text(std::string_view content, const std::string& path);

// Reads the first bytes of `path` and checks them as above; does nothing for a path that is not a
// regular file or cannot be read (the caller's own open reports that).
void check_not_foreign_file(const std::string& path);

// Fails naming a GGUF file when the folder has no config.json but holds *.gguf files (a llama.cpp
// download given as the model folder).
void check_not_gguf_folder(const std::string& dir);

}  // namespace shardlm
