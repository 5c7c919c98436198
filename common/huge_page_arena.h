// Memory for long-lived arrays (packed weights) carved out of large chunks in transparent huge
// pages, so that matrices smaller than a huge page (the 26B-A4B experts: 1-4 MB each) are streamed
// through 2 MiB pages too: a GEMV reading 4 KiB pages takes a TLB miss every 4 KiB of each weight
// stream (measured on expert-sized q4/int8 GEMVs: +3-11%). Allocations are bump-allocated and
// 4 KiB aligned; a chunk goes back to the system when its last allocation is released. Thread-safe.
#pragma once

#include <cstddef>

namespace shardlm::huge_page_arena {

inline constexpr size_t kHugePage = size_t{2} << 20;
inline constexpr size_t kChunkBytes = size_t{256} << 20;
inline constexpr size_t kAlignment = 4096;

// `bytes` (> 0) of zeroed memory, kAlignment aligned; throws std::bad_alloc.
void* allocate(size_t bytes);
// Gives back memory from allocate() (null: nothing).
void release(void* p);
// Chunks currently held (for tests).
size_t chunk_count();

}  // namespace shardlm::huge_page_arena
