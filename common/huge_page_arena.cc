#include "common/huge_page_arena.h"

#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <map>
#include <mutex>
#include <new>

namespace shardlm::huge_page_arena {
namespace {

struct Chunk {
  size_t size = 0;
  size_t used = 0;
  size_t live = 0;  // allocations not yet released
};

struct Arena {
  std::mutex mutex;
  std::map<uintptr_t, Chunk> chunks;  // by base address
  uintptr_t current = 0;              // the chunk new small allocations go to (0: none)
};

Arena& arena() {
  static Arena* a = new Arena;  // never destroyed: buffers may be released during static destruction
  return *a;
}

size_t round_up(size_t v, size_t to) { return (v + to - 1) / to * to; }

uintptr_t new_chunk(Arena& a, size_t size) {
  void* p = std::aligned_alloc(kHugePage, size);
  if (p == nullptr) throw std::bad_alloc();
  // A refusal (no THP, another OS) only costs the speed-up.
  madvise(p, size, MADV_HUGEPAGE);
  const auto base = reinterpret_cast<uintptr_t>(p);
  a.chunks[base] = Chunk{size, 0, 0};
  return base;
}

}  // namespace

void* allocate(size_t bytes) {
  if (bytes == 0) throw std::bad_alloc();
  const size_t need = round_up(bytes, kAlignment);
  Arena& a = arena();
  uintptr_t base = 0;
  void* p = nullptr;
  {
    std::lock_guard lock(a.mutex);
    if (need > kChunkBytes / 4) {
      base = new_chunk(a, round_up(need, kHugePage));  // a chunk of its own
    } else {
      if (a.current == 0 || a.chunks.at(a.current).size - a.chunks.at(a.current).used < need) {
        // The old current chunk goes when its last allocation does.
        if (a.current != 0 && a.chunks.at(a.current).live == 0) {
          std::free(reinterpret_cast<void*>(a.current));
          a.chunks.erase(a.current);
        }
        a.current = new_chunk(a, kChunkBytes);
      }
      base = a.current;
    }
    Chunk& c = a.chunks.at(base);
    p = reinterpret_cast<void*>(base + c.used);
    c.used += need;
    ++c.live;
  }
  std::memset(p, 0, bytes);  // outside the lock: several threads pack matrices at once
  return p;
}

void release(void* p) {
  if (p == nullptr) return;
  const auto addr = reinterpret_cast<uintptr_t>(p);
  Arena& a = arena();
  std::lock_guard lock(a.mutex);
  auto it = a.chunks.upper_bound(addr);
  if (it == a.chunks.begin()) std::abort();  // not from allocate(): a bug, never to be ignored
  it = std::prev(it);
  if (addr >= it->first + it->second.size) std::abort();
  if (--it->second.live == 0) {
    if (it->first == a.current) {
      it->second.used = 0;  // reused from the start
    } else {
      std::free(reinterpret_cast<void*>(it->first));
      a.chunks.erase(it);
    }
  }
}

size_t chunk_count() {
  Arena& a = arena();
  std::lock_guard lock(a.mutex);
  return a.chunks.size();
}

}  // namespace shardlm::huge_page_arena
