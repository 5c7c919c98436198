// Resident memory of this process (Linux /proc/self/status): current and peak, in bytes.
#pragma once

#include <cstdint>

namespace shardlm {

int64_t resident_bytes();       // VmRSS; 0 when unknown
int64_t peak_resident_bytes();  // VmHWM; 0 when unknown

// Memory this process can still take: the machine's MemAvailable (/proc/meminfo), or less where a
// cgroup v2 limit (memory.max less memory.current, as in a container) leaves less; 0 when unknown.
int64_t available_memory_bytes();

}  // namespace shardlm
