// A 64-byte aligned, owning array of trivially copyable elements (weights, activations, KV blocks).
// Arrays of 2 MiB and more start on a 2 MiB boundary and ask the kernel for transparent huge pages
// over their whole 2 MiB pages (Linux, THP in "madvise" mode or "always"): a GEMV streaming a
// weight matrix through 4 KiB pages takes a TLB miss every 4 KiB of every stream it reads (measured
// on a q4 GEMV: +4-11% with huge pages). long_lived() arrays (packed weights) come from
// huge_page_arena, so that smaller ones share huge pages. lazily_committed() arrays (the KV cache's
// pools) are anonymous mappings whose pages the kernel commits when first written.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include <sys/mman.h>

#include "common/huge_page_arena.h"

namespace shardlm {

template <typename T>
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t n) { resize(n); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  AlignedBuffer(AlignedBuffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)),
        size_(std::exchange(o.size_, 0)),
        in_arena_(std::exchange(o.in_arena_, false)),
        mapped_bytes_(std::exchange(o.mapped_bytes_, 0)) {}
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    if (this != &o) {
      release();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
      in_arena_ = std::exchange(o.in_arena_, false);
      mapped_bytes_ = std::exchange(o.mapped_bytes_, 0);
    }
    return *this;
  }
  ~AlignedBuffer() { release(); }

  // n zeroed elements that live as long as the model: 4 KiB aligned, from huge_page_arena.
  static AlignedBuffer long_lived(size_t n) {
    AlignedBuffer b;
    if (n == 0) return b;
    b.data_ = static_cast<T*>(huge_page_arena::allocate(n * sizeof(T)));
    b.size_ = n;
    b.in_arena_ = true;
    return b;
  }

  // n zeroed elements on 2 MiB boundaries (huge pages asked for) in an anonymous mapping: memory is
  // taken as the pages are first written, not when the array is made, so a pool sized for the most
  // it may ever hold (the KV cache) costs what it holds. Throws std::bad_alloc if the kernel refuses
  // the mapping.
  static AlignedBuffer lazily_committed(size_t n) {
    AlignedBuffer b;
    if (n == 0) return b;
    const size_t bytes = (n * sizeof(T) + kHugePage - 1) / kHugePage * kHugePage;
    const size_t span = bytes + kHugePage;  // room to start on a 2 MiB boundary
    void* p = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    const uintptr_t base = reinterpret_cast<uintptr_t>(p);
    const uintptr_t start = (base + kHugePage - 1) / kHugePage * kHugePage;
    if (start > base) munmap(p, start - base);
    const uintptr_t end = start + bytes;
    if (base + span > end) munmap(reinterpret_cast<void*>(end), base + span - end);
    madvise(reinterpret_cast<void*>(start), bytes, MADV_HUGEPAGE);
    b.data_ = reinterpret_cast<T*>(start);
    b.size_ = n;
    b.mapped_bytes_ = bytes;
    return b;
  }

  // Discards the contents; new elements are zero (an ordinary allocation, not long-lived).
  void resize(size_t n) {
    release();
    if (n == 0) return;
    const size_t bytes = (n * sizeof(T) + 63) / 64 * 64;
    const bool huge = bytes >= kHugePage;
    data_ = static_cast<T*>(std::aligned_alloc(huge ? kHugePage : 64, huge ? (bytes + kHugePage - 1) / kHugePage * kHugePage : bytes));
    if (!data_) throw std::bad_alloc();
    size_ = n;
    // Only the whole huge pages inside the array: a huge page over its tail would be resident in
    // full. A refusal (no THP, another OS) only costs the speed-up.
    if (huge) madvise(data_, bytes / kHugePage * kHugePage, MADV_HUGEPAGE);
    std::memset(static_cast<void*>(data_), 0, bytes);
  }

  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }
  T* begin() { return data_; }
  T* end() { return data_ + size_; }

 private:
  static constexpr size_t kHugePage = huge_page_arena::kHugePage;

  void release() {
    if (mapped_bytes_ > 0) {
      munmap(static_cast<void*>(data_), mapped_bytes_);
    } else if (in_arena_) {
      huge_page_arena::release(data_);
    } else {
      std::free(data_);
    }
    data_ = nullptr;
    size_ = 0;
    in_arena_ = false;
    mapped_bytes_ = 0;
  }

  T* data_ = nullptr;
  size_t size_ = 0;
  bool in_arena_ = false;
  size_t mapped_bytes_ = 0;  // lazily_committed(): the mapping's length
};

}  // namespace shardlm
