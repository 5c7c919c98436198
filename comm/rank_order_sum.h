// The one summation order of all_reduce_sum: element-wise ((x0 + x1) + x2) + ... over ranks in
// rank order. Both communicators use it, so every rank, every run and every implementation gets
// the same bits.
#pragma once

#include <algorithm>
#include <cstddef>

namespace shardlm::comm {

// parts[r] points at rank r's `count` values. `out` may be any one of the parts (or separate);
// the sum is formed block by block in a small buffer, so each input is read once.
template <typename T>
void sum_in_rank_order(const T* const* parts, int ranks, size_t count, T* out) {
  if (ranks <= 0 || count == 0) return;
  constexpr size_t kBlock = 1024;
  T acc[kBlock];
  for (size_t begin = 0; begin < count; begin += kBlock) {
    const size_t n = std::min(kBlock, count - begin);
    const T* p0 = parts[0] + begin;
    for (size_t i = 0; i < n; ++i) acc[i] = p0[i];
    for (int r = 1; r < ranks; ++r) {
      const T* p = parts[r] + begin;
      for (size_t i = 0; i < n; ++i) acc[i] += p[i];
    }
    std::copy(acc, acc + n, out + begin);
  }
}

// Same, with the parts laid out back to back `stride` elements apart.
template <typename T>
void sum_in_rank_order_strided(const T* parts, size_t stride, int ranks, size_t count, T* out) {
  constexpr int kMaxOnStack = 64;
  const T* stack_ptrs[kMaxOnStack] = {};
  const T** ptrs = stack_ptrs;
  T const** heap = nullptr;
  if (ranks > kMaxOnStack) ptrs = heap = new const T*[ranks];
  for (int r = 0; r < ranks; ++r) ptrs[r] = parts + static_cast<size_t>(r) * stride;
  sum_in_rank_order(ptrs, ranks, count, out);
  delete[] heap;
}

}  // namespace shardlm::comm
