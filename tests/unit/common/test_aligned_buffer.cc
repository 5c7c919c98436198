#include "common/aligned_buffer.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

namespace shardlm {
namespace {

// The line starting with `key` of the mapping of /proc/self/smaps that holds address p ("" if none).
std::string smaps_line_at(const void* p, const std::string& key) {
  const auto addr = reinterpret_cast<uintptr_t>(p);
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    uintptr_t lo = 0, hi = 0;
    char dash = 0;
    std::istringstream range(line);
    if (range >> std::hex >> lo >> dash >> hi && dash == '-') {
      inside = addr >= lo && addr < hi;
    } else if (inside && line.rfind(key, 0) == 0) {
      return line;
    }
  }
  return "";
}

std::string vm_flags_at(const void* p) { return smaps_line_at(p, "VmFlags:"); }

// Resident bytes of the mapping that holds p; -1 when no mapping holds it.
int64_t rss_at(const void* p) {
  const std::string line = smaps_line_at(p, "Rss:");
  return line.empty() ? -1 : std::stoll(line.substr(4)) * 1024;
}

TEST(AlignedBuffer, SmallArraysAreCacheLineAlignedAndZero) {
  AlignedBuffer<float> b(1000);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % 64, 0u);
  for (float v : b) ASSERT_EQ(v, 0.0f);
}

TEST(AlignedBuffer, LargeArraysStartOnHugePagesAndAskForThem) {
  constexpr size_t kCount = (size_t{5} << 20) / sizeof(uint16_t) + 77;  // 5 MiB and a bit
  AlignedBuffer<uint16_t> b(kCount);
  ASSERT_EQ(b.size(), kCount);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % (size_t{2} << 20), 0u);
  for (uint16_t v : b) ASSERT_EQ(v, 0u);
  b[kCount - 1] = 7;  // the tail, outside the advised huge pages, is usable
  EXPECT_EQ(b[kCount - 1], 7u);
  std::ifstream thp("/sys/kernel/mm/transparent_hugepage/enabled");
  if (!thp) GTEST_SKIP() << "no transparent huge pages on this system";
  // "hg": the mapping carries MADV_HUGEPAGE (whether the kernel found free huge pages is its own
  // business).
  const std::string flags = vm_flags_at(b.data());
  EXPECT_NE(flags.find(" hg"), std::string::npos) << flags;
}

TEST(AlignedBuffer, ResizeAndMoveKeepTheContract) {
  AlignedBuffer<float> a(size_t{3} << 20);
  a[5] = 1.0f;
  AlignedBuffer<float> b(std::move(a));
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(b[5], 1.0f);
  b.resize(10);
  EXPECT_EQ(b.size(), 10u);
  EXPECT_EQ(b[5], 0.0f);
  b.resize(0);
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.data(), nullptr);
}

TEST(AlignedBuffer, LazilyCommittedArraysTakeMemoryOnlyWhereWritten) {
  constexpr size_t kBytes = size_t{256} << 20;
  AlignedBuffer<uint8_t> b = AlignedBuffer<uint8_t>::lazily_committed(kBytes + 5);
  ASSERT_EQ(b.size(), kBytes + 5);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % (size_t{2} << 20), 0u);
  EXPECT_LT(rss_at(b.data()), int64_t{8} << 20);  // nothing written yet
  for (size_t i = 0; i < (size_t{32} << 20); i += 4096 * 61) ASSERT_EQ(b[i], 0u);  // reads see zeros
  b[kBytes + 4] = 9;
  for (size_t i = 0; i < (size_t{32} << 20); i += 4096) b[i] = 1;  // the first 32 MiB
  const int64_t rss = rss_at(b.data());
  EXPECT_GE(rss, int64_t{32} << 20);
  EXPECT_LT(rss, int64_t{64} << 20);  // not the whole 256 MiB
  // Reads of the rest see zeros too (checked after measuring: where the kernel maps no huge zero
  // page, a read fault commits a huge page of zeros).
  for (size_t i = size_t{32} << 20; i < kBytes + 4; i += 4096 * 61) ASSERT_EQ(b[i], 0u);
  AlignedBuffer<uint8_t> moved(std::move(b));
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(moved[kBytes + 4], 9u);
  const void* at = moved.data();
  moved = AlignedBuffer<uint8_t>();  // unmapped
  EXPECT_EQ(rss_at(at), -1);
}

}  // namespace
}  // namespace shardlm
