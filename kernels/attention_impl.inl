// Internal: the attention row-tile kernel over a vector-traits type S (simd_math.h), included by
// attention_scalar.cc / attention_avx2.cc / attention_avx512.cc (inside a "#pragma GCC target"
// region for the SIMD ones), for K/V stored as E (float, or uint16_t for bf16, which S::load widens
// exactly: the same arithmetic as over the widened values in f32). Online softmax per row over key
// tiles (the keys of one aligned run of kAttnKeyTile positions, gathered from the blocks):
//   s_j = scale * (q · k_j)      (lane-wise FMA over head_dim, then a fixed horizontal sum)
//   m' = max(m, max_j s_j);  a = exp(m - m');  p_j = exp(s_j - m')
//   l = l·a + Σ p_j;  o = o·a + Σ_j p_j v_j  (keys ascending);  finally o / l, lse = m + log l.

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Keys per step of the score loop for NR rows: one accumulator per (row, key), each a chain of
// head_dim / W FMAs; enough independent chains to keep the FMA units busy (AVX2: 8 for one or two
// rows, which fit the 16 registers with the keys' vectors and a query's) without spilling.
template <class S, int NR>
constexpr int keys_per_step() {
  return S::kWidth >= 16 ? 4 : S::kWidth >= 8 ? (NR <= 2 ? 4 : 2) : 1;
}

// scores[r][j + b] = scale * q_r · k_{j + b} for b in [0, KB), for NR rows (krows: the key tile's rows).
template <class S, int NR, int KB, class E>
void score_keys(const AttnTileArgs& a, const AttnRow* rows, const E* const* krows, int64_t j,
                float (*scores)[kAttnKeyTile]) {
  constexpr int64_t W = S::kWidth;
  const int64_t d = a.head_dim;
  typename S::V acc[NR][KB];
#pragma GCC unroll 8
  for (int r = 0; r < NR; ++r) {
#pragma GCC unroll 8
    for (int b = 0; b < KB; ++b) acc[r][b] = S::zero();
  }
  const E* kp[KB];
#pragma GCC unroll 8
  for (int b = 0; b < KB; ++b) kp[b] = krows[j + b];
  int64_t c = 0;
  for (; c + W <= d; c += W) {
    typename S::V kv[KB];
#pragma GCC unroll 8
    for (int b = 0; b < KB; ++b) kv[b] = S::load(kp[b] + c);
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) {
      const auto qv = S::load(rows[r].q + c);
#pragma GCC unroll 8
      for (int b = 0; b < KB; ++b) acc[r][b] = S::fmadd(qv, kv[b], acc[r][b]);
    }
  }
  if (c < d) {
    typename S::V kv[KB];
#pragma GCC unroll 8
    for (int b = 0; b < KB; ++b) kv[b] = S::load_tail(kp[b] + c, d - c);
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) {
      const auto qv = S::load_tail(rows[r].q + c, d - c);
#pragma GCC unroll 8
      for (int b = 0; b < KB; ++b) acc[r][b] = S::fmadd(qv, kv[b], acc[r][b]);
    }
  }
  if constexpr (S::kWidth == 16 && NR == 4 && KB == 4) {
    // The sixteen horizontal sums at once (the same sums bit for bit): lane 4r + b of the result
    // is row r's score of key j + b.
    typename S::V flat[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) flat[i] = acc[i % 4][i / 4];
    const __m512 sums = _mm512_mul_ps(_mm512_set1_ps(a.scale), simd::hsum16_avx512(flat));
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) _mm_storeu_ps(&scores[r][j], _mm512_extractf32x4_ps(sums, r));
  } else {
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) {
#pragma GCC unroll 8
      for (int b = 0; b < KB; ++b) scores[r][j + b] = a.scale * S::hsum(acc[r][b]);
    }
  }
}

// Scores of n_rows rows (in groups of kAttnScoreRows) for keys [js, je): each step of keys is
// scored for every group before the next, so that its keys are read from memory or L2 once and from
// L1 by the other groups (a key tile of 64 keys, 64 KiB at head_dim 256 in f32, does not stay in
// L1). Each score is the same chain of FMAs and the same horizontal sum whatever the grouping.
template <class S, int KB, class E>
void score_step(const AttnTileArgs& a, const AttnRow* rows, int n_rows, const E* const* krows, int64_t j,
                float (*scores)[kAttnKeyTile]) {
  for (int g = 0; g < n_rows; g += kAttnScoreRows) {
    switch (std::min(n_rows - g, kAttnScoreRows)) {
      case 1: score_keys<S, 1, KB>(a, rows + g, krows, j, scores + g); break;
      case 2: score_keys<S, 2, KB>(a, rows + g, krows, j, scores + g); break;
      case 3: score_keys<S, 3, KB>(a, rows + g, krows, j, scores + g); break;
      default: score_keys<S, 4, KB>(a, rows + g, krows, j, scores + g); break;
    }
  }
}

template <class S, class E>
void score_range(const AttnTileArgs& a, const AttnRow* rows, int n_rows, const E* const* krows, int64_t js,
                 int64_t je, float (*scores)[kAttnKeyTile]) {
  // Keys per step: what a group of kAttnScoreRows rows keeps in registers (where there are more
  // than two rows, smaller groups take the same step).
  const auto run = [&]<int KB>() {
    int64_t j = js;
    for (; j + KB <= je; j += KB) score_step<S, KB>(a, rows, n_rows, krows, j, scores);
    for (; j < je; ++j) score_step<S, 1>(a, rows, n_rows, krows, j, scores);
  };
  if (n_rows <= 2) {
    run.template operator()<keys_per_step<S, 2>()>();
  } else {
    run.template operator()<keys_per_step<S, kAttnScoreRows>()>();
  }
}

// For each of NR rows that share their keys: o[c .. c + NV·W) = o·alpha + Σ_j p_j v_j[c ..], keys
// [0, n_keys) of the rows' range (vrows: their value rows, c = col). Each V vector is loaded once for
// the NR rows; every row's sums are the same chain of FMAs as alone.
template <class S, int NR, int NV, class E>
void pv_group(float* const* o, const E* const* vrows, int64_t col, const float* const* p, int64_t n_keys,
              const float* alpha) {
  constexpr int64_t W = S::kWidth;
  typename S::V acc[NR][NV];
#pragma GCC unroll 4
  for (int r = 0; r < NR; ++r) {
    const auto av = S::set1(alpha[r]);
#pragma GCC unroll 8
    for (int t = 0; t < NV; ++t) acc[r][t] = S::mul(S::load(o[r] + t * W), av);
  }
  for (int64_t j = 0; j < n_keys; ++j) {
    const E* vj = vrows[j] + col;
    typename S::V pv[NR];
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) pv[r] = S::set1(p[r][j]);
#pragma GCC unroll 8
    for (int t = 0; t < NV; ++t) {
      const auto v = S::load(vj + t * W);
#pragma GCC unroll 4
      for (int r = 0; r < NR; ++r) acc[r][t] = S::fmadd(pv[r], v, acc[r][t]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < NR; ++r) {
#pragma GCC unroll 8
    for (int t = 0; t < NV; ++t) S::store(o[r] + t * W, acc[r][t]);
  }
}

template <class S, int NR, class E>
void pv_tail(float* const* o, const E* const* vrows, int64_t col, const float* const* p, int64_t n_keys,
             const float* alpha, int64_t count) {
  for (int r = 0; r < NR; ++r) {
    auto acc = S::mul(S::load_tail(o[r], count), S::set1(alpha[r]));
    for (int64_t j = 0; j < n_keys; ++j) acc = S::fmadd(S::set1(p[r][j]), S::load_tail(vrows[j] + col, count), acc);
    S::store_tail(o[r], acc, count);
  }
}

// Vectors per group for NR rows: NR x NV accumulators (AVX2: 8, AVX-512: 8 for one row as before,
// 16 for two or four).
template <class S, int NR>
constexpr int pv_vectors() {
  return S::kWidth >= 16 ? (NR >= 4 ? 4 : 8) : S::kWidth >= 8 ? 8 / NR : 8;
}

// Columns [c0, c1) of the NR rows' outputs (c0 a multiple of the vector width; c1 too, or d).
template <class S, int NR, class E>
void accumulate_pv(float* const* o, const E* const* vrows, const float* const* p, int64_t n_keys,
                   const float* alpha, int64_t c0, int64_t c1) {
  constexpr int64_t W = S::kWidth;
  constexpr int kGroup = pv_vectors<S, NR>();
  const int64_t full = c1 / W;
  float* oo[NR];
  int64_t v = c0 / W;
  auto at = [&](int64_t vec) {
    for (int r = 0; r < NR; ++r) oo[r] = o[r] + vec * W;
    return static_cast<float* const*>(oo);
  };
  for (; v + kGroup <= full; v += kGroup) pv_group<S, NR, kGroup>(at(v), vrows, v * W, p, n_keys, alpha);
  switch (full - v) {
    case 7: pv_group<S, NR, 7>(at(v), vrows, v * W, p, n_keys, alpha); break;
    case 6: pv_group<S, NR, 6>(at(v), vrows, v * W, p, n_keys, alpha); break;
    case 5: pv_group<S, NR, 5>(at(v), vrows, v * W, p, n_keys, alpha); break;
    case 4: pv_group<S, NR, 4>(at(v), vrows, v * W, p, n_keys, alpha); break;
    case 3: pv_group<S, NR, 3>(at(v), vrows, v * W, p, n_keys, alpha); break;
    case 2: pv_group<S, NR, 2>(at(v), vrows, v * W, p, n_keys, alpha); break;
    case 1: pv_group<S, NR, 1>(at(v), vrows, v * W, p, n_keys, alpha); break;
    default: break;
  }
  if (full * W < c1) pv_tail<S, NR>(at(full), vrows, full * W, p, n_keys, alpha, c1 - full * W);
}

// Vectors of the outputs that all groups of a tile's rows pass over before the next ones, so that
// the values' columns are read from memory or L2 once and from L1 by the other groups (a key tile's
// values, 64 KiB at head_dim 256 in f32, do not stay in L1). Each output vector is the same chain of
// FMAs whatever the slices.
inline constexpr int64_t kPvSliceVectors = 8;

// The largest of s[0, n), NaN ignored (-inf if there is none): lane-wise maxima (S::max(x, acc)
// keeps acc where x is NaN), then across the lanes; exact, so the order does not matter.
template <class S>
float max_of(const float* s, int64_t n) {
  constexpr int64_t W = S::kWidth;
  auto acc = S::set1(kNegInf);
  int64_t i = 0;
  for (; i + W <= n; i += W) acc = S::max(S::load(s + i), acc);
  if (i < n) acc = S::max(S::load_tail_fill(s + i, n - i, kNegInf), acc);
  return S::hmax(acc);
}

// p = exp(s - m) in place over [0, n), returns Σ p in a fixed order.
template <class S>
float exp_and_sum(float* s, int64_t n, float m) {
  constexpr int64_t W = S::kWidth;
  const auto mv = S::set1(m);
  auto sum = S::zero();
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    const auto e = S::exp(S::sub(S::load(s + i), mv));
    S::store(s + i, e);
    sum = S::add(sum, e);
  }
  if (i < n) {
    const auto e = S::exp(S::sub(S::load_tail_fill(s + i, n - i, kNegInf), mv));
    S::store_tail(s + i, e, n - i);
    sum = S::add(sum, e);
  }
  return S::hsum(sum);
}

// A key tile: up to kAttnKeyTile keys of increasing positions, all within one aligned run of
// kAttnKeyTile positions, gathered from the blocks in their order (so a tile may span blocks, e.g.
// four of the KV cache's blocks of 16 positions). k and v point at the tile's KV head.
template <class E>
struct KeyTile {
  const E* k[kAttnKeyTile];
  const E* v[kAttnKeyTile];
  int32_t pos[kAttnKeyTile];
  int64_t n = 0;
};

template <class S, class E>
void attention_tile_t(const AttnTileArgs& a, const AttnRow* rows, int n_rows) {
  const int64_t d = a.head_dim;
  float m[kAttnMaxRows], l[kAttnMaxRows];
  alignas(64) float scores[kAttnMaxRows][kAttnKeyTile];
  float* out[kAttnMaxRows];  // the rows' outputs, as accumulate_pv takes them
  for (int r = 0; r < n_rows; ++r) {
    m[r] = kNegInf;
    l[r] = 0.0f;
    out[r] = rows[r].out;
    std::fill(out[r], out[r] + d, 0.0f);
  }
  // One tile: each row's visible keys are a run [rs, re) of it (positions increase); the keys that
  // any row sees are scored, then each row's online-softmax step, then P·V.
  const auto run_tile = [&](const KeyTile<E>& tile) {
    int64_t rs[kAttnMaxRows], re[kAttnMaxRows];
    int64_t js = tile.n, je = 0;
    for (int r = 0; r < n_rows; ++r) {
      const int64_t pq = rows[r].position;
      // visible: pq - window < pos_k <= pq (no lower bound without a window)
      re[r] = std::upper_bound(tile.pos, tile.pos + tile.n, pq) - tile.pos;
      rs[r] = a.window > 0 ? std::upper_bound(tile.pos, tile.pos + tile.n, pq - a.window) - tile.pos : 0;
      if (rs[r] < re[r]) {
        js = std::min(js, rs[r]);
        je = std::max(je, re[r]);
      }
    }
    if (js >= je) return;
    score_range<S>(a, rows, n_rows, tile.k, js, je, scores);
    float alpha[kAttnMaxRows];
    float* p[kAttnMaxRows];
    for (int r = 0; r < n_rows; ++r) {
      if (rs[r] >= re[r]) continue;
      float* s = scores[r] + rs[r];
      p[r] = s;
      const int64_t n = re[r] - rs[r];
      const float tile_max = max_of<S>(s, n);
      const float m_new = tile_max > m[r] ? tile_max : m[r];
      alpha[r] = m[r] == kNegInf ? 0.0f : std::exp(m[r] - m_new);
      const float psum = exp_and_sum<S>(s, n, m_new);
      l[r] = l[r] * alpha[r] + psum;
      m[r] = m_new;
    }
    // Rows with the same keys (every row of a decoded token; a prefill's rows below the diagonal)
    // in fours or pairs, each V vector loaded once for them.
    int group_first[kAttnMaxRows], group_rows[kAttnMaxRows];
    int groups = 0;
    for (int r = 0; r < n_rows;) {
      if (rs[r] >= re[r]) {
        ++r;
        continue;
      }
      const auto same_keys = [&](int o) { return r + o < n_rows && rs[r + o] == rs[r] && re[r + o] == re[r]; };
      const int count = same_keys(1) && same_keys(2) && same_keys(3) ? 4 : same_keys(1) ? 2 : 1;
      group_first[groups] = r;
      group_rows[groups] = count;
      ++groups;
      r += count;
    }
    const int64_t slice = groups > 1 ? kPvSliceVectors * S::kWidth : d;
    for (int64_t c0 = 0; c0 < d; c0 += slice) {
      const int64_t c1 = std::min(c0 + slice, d);
      for (int gi = 0; gi < groups; ++gi) {
        const int r = group_first[gi];
        const E* const* vrows = tile.v + rs[r];
        const int64_t n_keys = re[r] - rs[r];
        switch (group_rows[gi]) {
          case 4: accumulate_pv<S, 4>(out + r, vrows, p + r, n_keys, alpha + r, c0, c1); break;
          case 2: accumulate_pv<S, 2>(out + r, vrows, p + r, n_keys, alpha + r, c0, c1); break;
          default: accumulate_pv<S, 1>(out + r, vrows, p + r, n_keys, alpha + r, c0, c1); break;
        }
      }
    }
  };
  // The blocks' keys that any row sees, in the blocks' order, cut into tiles where a position does
  // not follow the last one or enters another aligned run: each row's keys of a run form one tile
  // whatever the other rows are, so its result does not depend on them.
  KeyTile<E> tile;
  for (int64_t bi = 0; bi < a.n_blocks; ++bi) {
    const KvBlockView& blk = a.blocks[bi];
    if (blk.count <= 0) continue;
    // Keys of the block that some row sees, block-local: [ulo, uhi).
    int64_t ulo = blk.count, uhi = 0;
    for (int r = 0; r < n_rows; ++r) {
      const int64_t rel = static_cast<int64_t>(rows[r].position) - blk.first_position;  // pos_q - pos_k(0)
      const int64_t hi = std::min<int64_t>(blk.count, rel + 1);
      const int64_t lo = a.window > 0 ? std::max<int64_t>(0, rel - a.window + 1) : 0;
      if (lo < hi) {
        ulo = std::min(ulo, lo);
        uhi = std::max(uhi, hi);
      }
    }
    const E* kbase = static_cast<const E*>(blk.k) + a.kv_offset;
    const E* vbase = static_cast<const E*>(blk.v) + a.kv_offset;
    for (int64_t i = ulo; i < uhi; ++i) {
      const int64_t position = static_cast<int64_t>(blk.first_position) + i;
      if (tile.n > 0 && (position <= tile.pos[tile.n - 1] || aligned_run(position, kAttnKeyTile) != aligned_run(tile.pos[tile.n - 1], kAttnKeyTile))) {
        run_tile(tile);
        tile.n = 0;
      }
      tile.k[tile.n] = kbase + i * a.kv_stride;
      tile.v[tile.n] = vbase + i * a.kv_stride;
      tile.pos[tile.n] = static_cast<int32_t>(position);
      ++tile.n;
    }
  }
  if (tile.n > 0) run_tile(tile);
  for (int r = 0; r < n_rows; ++r) {
    if (l[r] > 0.0f) {
      // Vector division (as exact as the scalar one): out may alias anything, so a scalar loop
      // would divide one element at a time, reloading l (at short contexts most of the tile's time).
      constexpr int64_t W = S::kWidth;
      const auto lv = S::set1(l[r]);
      float* o = out[r];
      int64_t c = 0;
      for (; c + W <= d; c += W) S::store(o + c, S::div(S::load(o + c), lv));
      if (c < d) S::store_tail(o + c, S::div(S::load_tail(o + c, d - c), lv), d - c);
      *rows[r].lse = m[r] + std::log(l[r]);
    } else {
      *rows[r].lse = kNegInf;  // no visible key: out stays 0
    }
  }
}

}  // namespace
