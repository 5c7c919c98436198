#include "worker/process_memory.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace shardlm {
namespace {

// A "Key: N kB" line of a /proc file, in bytes; 0 when absent.
int64_t kib_field(const char* path, const char* key) {
  std::FILE* f = std::fopen(path, "r");
  if (!f) return 0;
  char line[256];
  int64_t value = 0;
  const size_t n = std::strlen(key);
  while (std::fgets(line, sizeof line, f)) {
    if (std::strncmp(line, key, n) == 0 && line[n] == ':') {
      long long kib = 0;
      if (std::sscanf(line + n + 1, "%lld", &kib) == 1) value = kib * 1024;
      break;
    }
  }
  std::fclose(f);
  return value;
}

// The number a file starts with (a cgroup's memory.max holds "max" when unlimited); -1 when none.
int64_t file_number(const char* path) {
  std::FILE* f = std::fopen(path, "r");
  if (!f) return -1;
  long long v = -1;
  if (std::fscanf(f, "%lld", &v) != 1) v = -1;
  std::fclose(f);
  return v;
}

}  // namespace

int64_t resident_bytes() { return kib_field("/proc/self/status", "VmRSS"); }
int64_t peak_resident_bytes() { return kib_field("/proc/self/status", "VmHWM"); }

int64_t available_memory_bytes() {
  int64_t available = kib_field("/proc/meminfo", "MemAvailable");
  const int64_t limit = file_number("/sys/fs/cgroup/memory.max");
  const int64_t current = file_number("/sys/fs/cgroup/memory.current");
  if (limit > 0 && current >= 0) {
    const int64_t left = std::max<int64_t>(limit - current, 0);
    available = available > 0 ? std::min(available, left) : left;
  }
  return available;
}

}  // namespace shardlm
