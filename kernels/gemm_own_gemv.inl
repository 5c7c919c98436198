// The GEMV tile of the own GEMM (one panel, one row), written once for every SIMD level and
// included, inside the level's "#pragma GCC target" region, by gemm_own_avx2.cc and
// gemm_own_avx512.cc. Row is the level's 16-column row type: V (the 16 f32 of a panel row),
// zero(), add(a, b), fma_row<kBf16>(x, w, row, acc) (acc + x * panel row `row` of w),
// load_y(y, valid) / store_y(y, v, valid) (the first `valid` columns of y).
//
// A complete pair of chunks is stored interleaved (gemm_own.h), so the two chunks' sums run side
// by side (one fma chain alone is bound by the fma latency, ~39 GB/s of bf16 on a Zen 5 core)
// while the weights are read as one sequential stream; each chunk's sum is added to y in chunk
// order, as the arithmetic prescribes. Other chunks (an incomplete last pair, a range that starts
// inside a pair) run one at a time. (Include after gemm_own.h, inside namespace shardlm::gemm.)

// The tile prefetches its weights this far ahead: the hardware prefetchers alone fall behind.
inline constexpr int64_t kGemvPrefetchBytes = 8192;

template <class Row, bool kBf16>
void micro_gemv(const float* x, int64_t /*ldx*/, const void* w, int64_t /*panel_stride*/, int64_t k, int64_t k0,
                int64_t k1, float* y, int64_t /*ldy*/, int valid_last) {
  using V = typename Row::V;
  constexpr int64_t kRowBytes = kPanel * (kBf16 ? 2 : 4);
  // Prefetch addresses (written here in the kernel body: GCC 12 drops a prefetch inside a lambda).
  const char* ahead = static_cast<const char*>(w) + kGemvPrefetchBytes;
  V t = Row::load_y(y, valid_last);
  int64_t c0 = k0;
  while (c0 < k1) {
    if (c0 % (2 * kKChunk) == 0 && c0 + 2 * kKChunk <= std::min(k, k1)) {
      // Rows c0 + 4i .. c0 + 4i + 3 hold k = c0 + 2i, c0 + 2i + 1 (first chunk) and the same two of
      // the second chunk.
      V s0 = Row::zero(), s1 = Row::zero();
      const float* xa = x + c0;
      const float* xb = x + c0 + kKChunk;
      for (int64_t i = 0; i < kKChunk / 2; ++i) {
        const int64_t row = c0 + 4 * i;
#pragma GCC unroll 4
        for (int64_t line = 0; line < 4 * kRowBytes / 64; ++line) _mm_prefetch(ahead + row * kRowBytes + line * 64, _MM_HINT_T0);
        s0 = Row::template fma_row<kBf16>(xa[2 * i], w, row, s0);
        s1 = Row::template fma_row<kBf16>(xb[2 * i], w, row + 2, s1);
        s0 = Row::template fma_row<kBf16>(xa[2 * i + 1], w, row + 1, s0);
        s1 = Row::template fma_row<kBf16>(xb[2 * i + 1], w, row + 3, s1);
      }
      t = Row::add(t, s0);
      t = Row::add(t, s1);
      c0 += 2 * kKChunk;
    } else {
      const int64_t c1 = std::min(c0 + kKChunk, k1);
      const ChunkRows rows = chunk_rows(c0, k);
      V s = Row::zero();
      int64_t kk = c0, row = rows.first;
      for (; kk + 1 < c1; kk += 2, row += rows.step) {
#pragma GCC unroll 2
        for (int64_t line = 0; line < 2 * kRowBytes / 64; ++line) _mm_prefetch(ahead + row * kRowBytes + line * 64, _MM_HINT_T0);
        s = Row::template fma_row<kBf16>(x[kk], w, row, s);
        s = Row::template fma_row<kBf16>(x[kk + 1], w, row + 1, s);
      }
      if (kk < c1) s = Row::template fma_row<kBf16>(x[kk], w, row, s);
      t = Row::add(t, s);
      c0 = c1;
    }
  }
  Row::store_y(y, t, valid_last);
}
