// The GEMV tile of the own GEMM (one panel, one row), written once for every SIMD level and
// included, inside the level's "#pragma GCC target" region, by gemm_own_avx2.cc and
// gemm_own_avx512.cc. Row is the level's 16-column row type: V (the 16 f32 of a panel row),
// zero(), add(a, b), fma_row<kBf16>(x, w, row, acc) (acc + x * panel row `row` of w),
// load_y(y, valid) / store_y(y, v, valid) (the first `valid` columns of y), and kPrefetchBytes: how
// far ahead of its reads the tile prefetches its weights (the hardware prefetchers alone fall behind;
// the best distance depends on the core, see the levels).
//
// The chunks of a group are stored interleaved (gemm_own.h), so the group's two or three chunk sums
// run side by side (one fma chain alone is bound by the fma latency, ~39 GB/s of bf16 on a Zen 5
// core) while the weights are read as one sequential stream; each chunk's sum is added to y in chunk
// order, as the arithmetic prescribes. A chunk stored alone, or a range that does not cover a whole
// group, runs chunk by chunk. (Include after gemm_own.h, inside namespace shardlm::gemm.)

// t + the sums of the G complete chunks (of len k) of the group that starts at k index `begin`, each
// sum in k order, added in chunk order.
template <class Row, bool kBf16, int G>
typename Row::V gemv_group(const float* x, const void* w, int64_t begin, int64_t len, typename Row::V t) {
  using V = typename Row::V;
  constexpr int64_t kRowBytes = kPanel * (kBf16 ? 2 : 4);
  // Prefetches written here in the function body: GCC 12 deletes calls to a lambda or helper that
  // only prefetches (its mod-ref analysis finds they read and write nothing) unless always inlined.
  const char* ahead = static_cast<const char*>(w) + Row::kPrefetchBytes;
  V s[G];
#pragma GCC unroll 3
  for (int m = 0; m < G; ++m) s[m] = Row::zero();
  const float* xg = x + begin;
  for (int64_t step = 0; step < len / 2; ++step) {
    // Rows begin + 2G step .. + 2G - 1: k = 2 step and 2 step + 1 of each chunk, in chunk order.
    const int64_t row = begin + 2 * G * step;
#pragma GCC unroll 6
    for (int64_t line = 0; line < 2 * G * kRowBytes / 64; ++line) _mm_prefetch(ahead + row * kRowBytes + line * 64, _MM_HINT_T0);
#pragma GCC unroll 3
    for (int m = 0; m < G; ++m) s[m] = Row::template fma_row<kBf16>(xg[m * len + 2 * step], w, row + 2 * m, s[m]);
#pragma GCC unroll 3
    for (int m = 0; m < G; ++m) s[m] = Row::template fma_row<kBf16>(xg[m * len + 2 * step + 1], w, row + 2 * m + 1, s[m]);
  }
#pragma GCC unroll 3
  for (int m = 0; m < G; ++m) t = Row::add(t, s[m]);
  return t;
}

// t + the sum of the chunk that starts at k index c0 (of len k), over [c0, min(c0 + len, k1)), for a
// chunk stored alone or a range that does not cover a whole group: row by row.
template <class Row, bool kBf16>
typename Row::V gemv_chunk(const float* x, const void* w, int64_t k, int64_t len, int64_t c0, int64_t k1,
                           typename Row::V t) {
  using V = typename Row::V;
  constexpr int64_t kRowBytes = kPanel * (kBf16 ? 2 : 4);
  const char* ahead = static_cast<const char*>(w) + Row::kPrefetchBytes;
  const int64_t c1 = std::min(c0 + len, k1);
  const ChunkRows rows = chunk_rows(c0, k, len);
  V s = Row::zero();
  int64_t kk = c0, row = rows.first;
  if (rows.step == 2) {  // plain order: four rows a step, as many bytes as a step of a pair
    for (; kk + 3 < c1; kk += 4, row += 4) {
#pragma GCC unroll 4
      for (int64_t line = 0; line < 4 * kRowBytes / 64; ++line) _mm_prefetch(ahead + row * kRowBytes + line * 64, _MM_HINT_T0);
      s = Row::template fma_row<kBf16>(x[kk], w, row, s);
      s = Row::template fma_row<kBf16>(x[kk + 1], w, row + 1, s);
      s = Row::template fma_row<kBf16>(x[kk + 2], w, row + 2, s);
      s = Row::template fma_row<kBf16>(x[kk + 3], w, row + 3, s);
    }
  }
  for (; kk + 1 < c1; kk += 2, row += rows.step) {
#pragma GCC unroll 2
    for (int64_t line = 0; line < 2 * kRowBytes / 64; ++line) _mm_prefetch(ahead + row * kRowBytes + line * 64, _MM_HINT_T0);
    s = Row::template fma_row<kBf16>(x[kk], w, row, s);
    s = Row::template fma_row<kBf16>(x[kk + 1], w, row + 1, s);
  }
  if (kk < c1) s = Row::template fma_row<kBf16>(x[kk], w, row, s);
  return Row::add(t, s);
}

// t[j] + the sums of the G complete chunks of the group at `begin` in panel j (w[j]) of two panels
// read side by side, each panel's sums exactly as gemv_group's.
template <class Row, bool kBf16, int G>
void gemv_group_pair(const float* x, const void* const (&w)[2], int64_t begin, int64_t len, typename Row::V (&t)[2]) {
  using V = typename Row::V;
  constexpr int64_t kRowBytes = kPanel * (kBf16 ? 2 : 4);
  const char* ahead0 = static_cast<const char*>(w[0]) + Row::kPrefetchBytes;
  const char* ahead1 = static_cast<const char*>(w[1]) + Row::kPrefetchBytes;
  V s0[G], s1[G];
#pragma GCC unroll 3
  for (int m = 0; m < G; ++m) s0[m] = s1[m] = Row::zero();
  const float* xg = x + begin;
  for (int64_t step = 0; step < len / 2; ++step) {
    const int64_t row = begin + 2 * G * step;
#pragma GCC unroll 6
    for (int64_t line = 0; line < 2 * G * kRowBytes / 64; ++line) {
      _mm_prefetch(ahead0 + row * kRowBytes + line * 64, _MM_HINT_T0);
      _mm_prefetch(ahead1 + row * kRowBytes + line * 64, _MM_HINT_T0);
    }
#pragma GCC unroll 3
    for (int m = 0; m < G; ++m) {
      const float xv = xg[m * len + 2 * step];
      s0[m] = Row::template fma_row<kBf16>(xv, w[0], row + 2 * m, s0[m]);
      s1[m] = Row::template fma_row<kBf16>(xv, w[1], row + 2 * m, s1[m]);
    }
#pragma GCC unroll 3
    for (int m = 0; m < G; ++m) {
      const float xv = xg[m * len + 2 * step + 1];
      s0[m] = Row::template fma_row<kBf16>(xv, w[0], row + 2 * m + 1, s0[m]);
      s1[m] = Row::template fma_row<kBf16>(xv, w[1], row + 2 * m + 1, s1[m]);
    }
  }
#pragma GCC unroll 3
  for (int m = 0; m < G; ++m) {
    t[0] = Row::add(t[0], s0[m]);
    t[1] = Row::add(t[1], s1[m]);
  }
}

template <class Row, bool kBf16>
void micro_gemv(const float* x, int64_t /*ldx*/, const void* w, int64_t /*panel_stride*/, int64_t k, int64_t k0,
                int64_t k1, float* y, int64_t /*ldy*/, int valid_last) {
  using V = typename Row::V;
  V t = Row::load_y(y, valid_last);
  const int64_t len = chunk_len(k);
  int64_t c0 = k0;
  while (c0 < k1) {
    const ChunkGroup g = chunk_group(c0, k, len);
    if (g.members > 1 && c0 == g.begin && g.begin + g.members * len <= k1) {  // a whole group
      t = g.members == 2 ? gemv_group<Row, kBf16, 2>(x, w, g.begin, len, t)
                         : gemv_group<Row, kBf16, 3>(x, w, g.begin, len, t);
      c0 += g.members * len;
    } else {
      t = gemv_chunk<Row, kBf16>(x, w, k, len, c0, k1, t);
      c0 = std::min(c0 + len, k1);
    }
  }
  Row::store_y(y, t, valid_last);
}

// The GEMV tile of two panels (panel_stride elements apart), read as two sequential streams side by
// side: for cores that read a few streams faster than one (Zen 3). Each panel's result is exactly
// micro_gemv's.
template <class Row, bool kBf16>
void micro_gemv_pair(const float* x, int64_t /*ldx*/, const void* w, int64_t panel_stride, int64_t k, int64_t k0,
                     int64_t k1, float* y, int64_t /*ldy*/, int valid_last) {
  using V = typename Row::V;
  const size_t elem = kBf16 ? 2 : 4;
  const void* const panels[2] = {w, static_cast<const char*>(w) + panel_stride * elem};
  V t[2] = {Row::load_y(y, static_cast<int>(kPanel)), Row::load_y(y + kPanel, valid_last)};
  const int64_t len = chunk_len(k);
  int64_t c0 = k0;
  while (c0 < k1) {
    const ChunkGroup g = chunk_group(c0, k, len);
    if (g.members > 1 && c0 == g.begin && g.begin + g.members * len <= k1) {  // a whole group
      if (g.members == 2) {
        gemv_group_pair<Row, kBf16, 2>(x, panels, g.begin, len, t);
      } else {
        gemv_group_pair<Row, kBf16, 3>(x, panels, g.begin, len, t);
      }
      c0 += g.members * len;
    } else {
      t[0] = gemv_chunk<Row, kBf16>(x, panels[0], k, len, c0, k1, t[0]);
      t[1] = gemv_chunk<Row, kBf16>(x, panels[1], k, len, c0, k1, t[1]);
      c0 = std::min(c0 + len, k1);
    }
  }
  Row::store_y(y, t[0], static_cast<int>(kPanel));
  Row::store_y(y + kPanel, t[1], valid_last);
}
