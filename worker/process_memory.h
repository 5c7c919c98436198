// Resident memory of this process (Linux /proc/self/status): current and peak, in bytes.
#pragma once

#include <cstdint>

namespace shardlm {

int64_t resident_bytes();       // VmRSS; 0 when unknown
int64_t peak_resident_bytes();  // VmHWM; 0 when unknown

}  // namespace shardlm
