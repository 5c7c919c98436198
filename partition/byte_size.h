// Byte sizes as people write them: parsing "24GiB", "512MiB", "30GB", "1.5 TiB", "4096" (bytes) for
// command-line options, and printing a count of bytes as "34.1 GiB".
#pragma once

#include <cstdint>
#include <string>

namespace shardlm {

// Binary units (KiB, MiB, GiB, TiB; also K, M, G, T) are powers of 1024, decimal units (kB, MB, GB,
// TB) powers of 1000; case does not matter; no unit or "B" means bytes. Throws Error naming the text.
int64_t parse_byte_size(const std::string& text);

// "0 B", "900 B", "1.5 KiB", "34.1 GiB" (one decimal from KiB up).
std::string format_bytes(int64_t bytes);

}  // namespace shardlm
