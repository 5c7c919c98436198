// The version of shardlm: `shardlm --version`, GET /version, the start line of serve.
#pragma once

namespace shardlm {

inline constexpr const char* kVersion = "0.1.0";

}  // namespace shardlm
