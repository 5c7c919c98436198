// A 64-byte aligned, owning array of trivially copyable elements (weights, activations, KV blocks).
// Arrays of 2 MiB and more start on a 2 MiB boundary and ask the kernel for transparent huge pages
// over their whole 2 MiB pages (Linux, THP in "madvise" mode or "always"): a GEMV streaming a
// weight matrix through 4 KiB pages takes a TLB miss every 4 KiB of every stream it reads (measured
// on a q4 GEMV: +4-11% with huge pages). long_lived() arrays (packed weights) come from
// huge_page_arena, so that smaller ones share huge pages.
#pragma once

#include <cstddef>
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
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)), in_arena_(std::exchange(o.in_arena_, false)) {}
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    if (this != &o) {
      release();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
      in_arena_ = std::exchange(o.in_arena_, false);
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
    if (in_arena_) {
      huge_page_arena::release(data_);
    } else {
      std::free(data_);
    }
    data_ = nullptr;
    size_ = 0;
    in_arena_ = false;
  }

  T* data_ = nullptr;
  size_t size_ = 0;
  bool in_arena_ = false;
};

}  // namespace shardlm
