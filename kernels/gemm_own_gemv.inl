// The GEMV tile of the own GEMM (one row, one to three panels), written once for every SIMD level and
// included, inside the level's "#pragma GCC target" region, by gemm_own_avx2.cc and
// gemm_own_avx512.cc. Row is the level's 16-column row type: V (the 16 f32 of a panel row),
// zero(), add(a, b), fma_row<kBf16>(x, w, row, acc) (acc + x * panel row `row` of w),
// load_y(y, valid) / store_y(y, v, valid) (the first `valid` columns of y), prefetch_bytes(P):
// how far ahead of its reads each of the tile's P streams prefetches its weights (the hardware
// prefetchers alone fall behind; the best distance depends on the core and the number of streams,
// see the levels), and prefetch(p): the prefetch of one cache line (always inlined, with the hint
// that suits the core).
//
// The chunks of a group are stored interleaved (gemm_own.h), so the group's two or three chunk sums
// run side by side (one fma chain alone is bound by the fma latency, ~39 GB/s of bf16 on a Zen 5
// core) while the weights are read as one sequential stream; each chunk's sum is added to y in chunk
// order, as the arithmetic prescribes. A chunk stored alone, or a range that does not cover a whole
// group, runs chunk by chunk. (Include after gemm_own.h, inside namespace shardlm::gemm.)

// t[p] + the sums of the G complete chunks (of len k) of the group that starts at k index `begin` in
// panel p (w[p]) of P panels read side by side, each sum in k order, added in chunk order; each
// panel's result is the same whatever P.
template <class Row, bool kBf16, int G, int P>
void gemv_group(const float* x, const void* const (&w)[P], int64_t begin, int64_t len, typename Row::V (&t)[P]) {
  using V = typename Row::V;
  constexpr int64_t kRowBytes = kPanel * (kBf16 ? 2 : 4);
  // Prefetches written here in the function body: GCC 12 deletes calls to a lambda or helper that
  // only prefetches (its mod-ref analysis finds they read and write nothing) unless always inlined.
  const char* ahead[P];
#pragma GCC unroll 4
  for (int p = 0; p < P; ++p) ahead[p] = static_cast<const char*>(w[p]) + Row::prefetch_bytes(P);
  V s[P][G];
#pragma GCC unroll 4
  for (int p = 0; p < P; ++p) {
#pragma GCC unroll 3
    for (int m = 0; m < G; ++m) s[p][m] = Row::zero();
  }
  const float* xg = x + begin;
  for (int64_t step = 0; step < len / 2; ++step) {
    // Rows begin + 2G step .. + 2G - 1: k = 2 step and 2 step + 1 of each chunk, in chunk order.
    const int64_t row = begin + 2 * G * step;
#pragma GCC unroll 6
    for (int64_t line = 0; line < 2 * G * kRowBytes / 64; ++line) {
#pragma GCC unroll 4
      for (int p = 0; p < P; ++p) Row::prefetch(ahead[p] + row * kRowBytes + line * 64);
    }
#pragma GCC unroll 4
    for (int half = 0; half < 2; ++half) {
#pragma GCC unroll 3
      for (int m = 0; m < G; ++m) {
        const float xv = xg[m * len + 2 * step + half];
#pragma GCC unroll 4
        for (int p = 0; p < P; ++p) s[p][m] = Row::template fma_row<kBf16>(xv, w[p], row + 2 * m + half, s[p][m]);
      }
    }
  }
#pragma GCC unroll 3
  for (int m = 0; m < G; ++m) {
#pragma GCC unroll 4
    for (int p = 0; p < P; ++p) t[p] = Row::add(t[p], s[p][m]);
  }
}

// t + the sum of the chunk that starts at k index c0 (of len k), over [c0, min(c0 + len, k1)), for a
// chunk stored alone or a range that does not cover a whole group: row by row.
template <class Row, bool kBf16>
typename Row::V gemv_chunk(const float* x, const void* w, int64_t k, int64_t len, int64_t c0, int64_t k1,
                           typename Row::V t) {
  using V = typename Row::V;
  constexpr int64_t kRowBytes = kPanel * (kBf16 ? 2 : 4);
  const char* ahead = static_cast<const char*>(w) + Row::prefetch_bytes(1);
  const int64_t c1 = std::min(c0 + len, k1);
  const ChunkRows rows = chunk_rows(c0, k, len);
  V s = Row::zero();
  int64_t kk = c0, row = rows.first;
  if (rows.step == 2) {  // plain order: four rows a step, as many bytes as a step of a pair
    for (; kk + 3 < c1; kk += 4, row += 4) {
#pragma GCC unroll 4
      for (int64_t line = 0; line < 4 * kRowBytes / 64; ++line) Row::prefetch(ahead + row * kRowBytes + line * 64);
      s = Row::template fma_row<kBf16>(x[kk], w, row, s);
      s = Row::template fma_row<kBf16>(x[kk + 1], w, row + 1, s);
      s = Row::template fma_row<kBf16>(x[kk + 2], w, row + 2, s);
      s = Row::template fma_row<kBf16>(x[kk + 3], w, row + 3, s);
    }
  }
  for (; kk + 1 < c1; kk += 2, row += rows.step) {
#pragma GCC unroll 4
    for (int64_t line = 0; line < 2 * kRowBytes / 64; ++line) Row::prefetch(ahead + row * kRowBytes + line * 64);
    s = Row::template fma_row<kBf16>(x[kk], w, row, s);
    s = Row::template fma_row<kBf16>(x[kk + 1], w, row + 1, s);
  }
  if (kk < c1) s = Row::template fma_row<kBf16>(x[kk], w, row, s);
  return Row::add(t, s);
}

// The GEMV tile of P panels (panel_stride elements apart), read as P sequential streams side by
// side (P = 3: for cores that read a few streams faster than one, such as Zen 3); each panel's result
// is the same whatever P.
template <class Row, bool kBf16, int P>
void micro_gemv(const float* x, int64_t /*ldx*/, const void* w, int64_t panel_stride, int64_t k, int64_t k0,
                int64_t k1, float* y, int64_t /*ldy*/, int valid_last) {
  using V = typename Row::V;
  const size_t elem = kBf16 ? 2 : 4;
  const void* panels[P];
  V t[P];
#pragma GCC unroll 4
  for (int p = 0; p < P; ++p) {
    panels[p] = static_cast<const char*>(w) + p * panel_stride * elem;
    t[p] = Row::load_y(y + p * kPanel, p == P - 1 ? valid_last : static_cast<int>(kPanel));
  }
  const int64_t len = chunk_len(k);
  int64_t c0 = k0;
  while (c0 < k1) {
    const ChunkGroup g = chunk_group(c0, k, len);
    if (g.members > 1 && c0 == g.begin && g.begin + g.members * len <= k1) {  // a whole group
      if (g.members == 2) {
        gemv_group<Row, kBf16, 2, P>(x, panels, g.begin, len, t);
      } else {
        gemv_group<Row, kBf16, 3, P>(x, panels, g.begin, len, t);
      }
      c0 += g.members * len;
    } else {
#pragma GCC unroll 4
      for (int p = 0; p < P; ++p) t[p] = gemv_chunk<Row, kBf16>(x, panels[p], k, len, c0, k1, t[p]);
      c0 = std::min(c0 + len, k1);
    }
  }
#pragma GCC unroll 4
  for (int p = 0; p < P; ++p) Row::store_y(y + p * kPanel, t[p], p == P - 1 ? valid_last : static_cast<int>(kPanel));
}
