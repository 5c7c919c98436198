// Human-readable numbers for command output: 30,697,345,340 and 4.84 GB.
#pragma once

#include <cstdint>
#include <string>

namespace shardlm {

std::string with_commas(int64_t value);          // 1234567 -> "1,234,567"
std::string decimal_bytes(uint64_t bytes);       // 4844524724 -> "4.84 GB" (powers of 1000)

}  // namespace shardlm
