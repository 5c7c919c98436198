// Deterministic test inputs for communicator tests: values every rank can regenerate for any
// other rank, with varied magnitudes so that the order of summation shows in the low bits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace shardlm::comm::testing {

inline uint32_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return static_cast<uint32_t>(x);
}

// A value in roughly +-[2^-10, 2^10] that depends on (rank, index, salt).
inline double test_value(int rank, size_t i, uint64_t salt = 0) {
  uint32_t h = mix((static_cast<uint64_t>(rank) << 40) ^ (i * 0x9e3779b97f4a7c15ULL) ^ (salt << 20));
  double mantissa = 1.0 + (h & 0xfffff) / double(1 << 20);
  int exponent = static_cast<int>((h >> 20) % 21) - 10;
  double v = mantissa * (exponent >= 0 ? double(1u << exponent) : 1.0 / double(1u << -exponent));
  return (h >> 31) ? -v : v;
}

template <typename T>
std::vector<T> rank_values(int rank, size_t count, uint64_t salt = 0) {
  std::vector<T> v(count);
  for (size_t i = 0; i < count; ++i) v[i] = static_cast<T>(test_value(rank, i, salt));
  return v;
}

// The specified result of all_reduce_sum: for each element ((x0 + x1) + x2) + ... in rank order.
template <typename T>
std::vector<T> expected_sum(int ranks, size_t count, uint64_t salt = 0) {
  std::vector<T> acc = rank_values<T>(0, count, salt);
  for (int r = 1; r < ranks; ++r) {
    std::vector<T> v = rank_values<T>(r, count, salt);
    for (size_t i = 0; i < count; ++i) acc[i] = acc[i] + v[i];
  }
  return acc;
}

template <typename T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

inline std::vector<uint8_t> rank_bytes(int rank, size_t bytes, uint64_t salt = 0) {
  std::vector<uint8_t> v(bytes);
  for (size_t i = 0; i < bytes; ++i) v[i] = static_cast<uint8_t>(mix(salt * 7919 + rank * 131071 + i));
  return v;
}

}  // namespace shardlm::comm::testing
