#include "common/huge_page_arena.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "common/aligned_buffer.h"

namespace shardlm {
namespace {

using huge_page_arena::kAlignment;
using huge_page_arena::kChunkBytes;

TEST(HugePageArena, AllocationsAreAlignedZeroedAndPacked) {
  const size_t chunks_before = huge_page_arena::chunk_count();
  void* a = huge_page_arena::allocate(100);
  void* b = huge_page_arena::allocate(5000);
  void* c = huge_page_arena::allocate(1 << 20);
  for (void* p : {a, b, c}) EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % kAlignment, 0u);
  // Small allocations follow each other in one chunk, each rounded up to the alignment.
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b) - reinterpret_cast<uintptr_t>(a), kAlignment);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(c) - reinterpret_cast<uintptr_t>(b), 2 * kAlignment);
  const auto* bytes = static_cast<const unsigned char*>(c);
  for (size_t i = 0; i < (1 << 20); ++i) ASSERT_EQ(bytes[i], 0u);
  std::memset(a, 0xAB, 100);  // writable
  EXPECT_LE(huge_page_arena::chunk_count(), chunks_before + 1);
  huge_page_arena::release(a);
  huge_page_arena::release(b);
  huge_page_arena::release(c);
  huge_page_arena::release(nullptr);
}

TEST(HugePageArena, ReusedMemoryIsZeroedAgain) {
  // Once every allocation of the current chunk is released it is reused from its start.
  void* a = huge_page_arena::allocate(4096);
  std::memset(a, 0xFF, 4096);
  huge_page_arena::release(a);
  auto* b = static_cast<unsigned char*>(huge_page_arena::allocate(4096));
  for (int i = 0; i < 4096; ++i) ASSERT_EQ(b[i], 0u);
  huge_page_arena::release(b);
}

TEST(HugePageArena, LargeAllocationsGetTheirOwnChunkAndGiveItBack) {
  const size_t before = huge_page_arena::chunk_count();
  void* big = huge_page_arena::allocate(kChunkBytes / 4 + 1);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(big) % huge_page_arena::kHugePage, 0u);
  EXPECT_EQ(huge_page_arena::chunk_count(), before + 1);
  huge_page_arena::release(big);
  EXPECT_EQ(huge_page_arena::chunk_count(), before);
}

TEST(HugePageArena, FullChunksAreFreedWhenTheirLastAllocationGoes) {
  const size_t before = huge_page_arena::chunk_count();
  // Fill more than one chunk with allocations of a quarter chunk.
  std::vector<void*> held;
  for (int i = 0; i < 6; ++i) held.push_back(huge_page_arena::allocate(kChunkBytes / 4));
  EXPECT_GE(huge_page_arena::chunk_count(), before + 1);
  for (void* p : held) huge_page_arena::release(p);
  // At most the current chunk stays (empty, to be reused).
  EXPECT_LE(huge_page_arena::chunk_count(), before + 1);
}

TEST(HugePageArena, ManyThreadsAllocateAndReleaseAtOnce) {
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &failures] {
      std::vector<unsigned char*> mine;
      for (int i = 0; i < 200; ++i) {
        const size_t n = 1000 + 37 * i;
        auto* p = static_cast<unsigned char*>(huge_page_arena::allocate(n));
        std::memset(p, t + 1, n);
        mine.push_back(p);
      }
      // Nobody else wrote into my memory.
      for (int i = 0; i < 200; ++i) {
        for (size_t j = 0; j < 1000 + 37 * static_cast<size_t>(i); ++j) failures[t] += mine[i][j] != t + 1;
      }
      for (auto* p : mine) huge_page_arena::release(p);
    });
  }
  for (auto& th : threads) th.join();
  for (int f : failures) EXPECT_EQ(f, 0);
}

TEST(HugePageArena, LongLivedBuffersComeFromTheArenaAndMoveLikeAnyOther) {
  auto a = AlignedBuffer<float>::long_lived(1000);
  EXPECT_EQ(a.size(), 1000u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data()) % kAlignment, 0u);
  for (float v : a) ASSERT_EQ(v, 0.0f);
  a[3] = 2.0f;
  AlignedBuffer<float> b;
  b = std::move(a);
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(b[3], 2.0f);
  b.resize(8);  // back to an ordinary allocation
  EXPECT_EQ(b[3], 0.0f);
  EXPECT_TRUE(AlignedBuffer<float>::long_lived(0).empty());
}

}  // namespace
}  // namespace shardlm
