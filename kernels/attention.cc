// Attention partials: argument checks, the naive reference (double precision, full softmax), the
// exact merge, and the dispatcher that cuts the keys into aligned chunks of positions and the (query,
// head) rows into tiles sharing a KV head, runs them on OpenMP threads with the active ISA's tile
// kernel (attention_impl.inl) and merges the chunks' partials in order.
#include "kernels/attention.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <map>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/half.h"
#include "kernels/attention_simd.h"
#include "kernels/cpu_features.h"

namespace shardlm {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

void check_args(const float* q, int64_t n_q, const int32_t* q_positions, const AttentionShape& shape,
                const KvBlockView* blocks, int64_t n_blocks, int32_t window) {
  if (n_q < 0) fail("attention: negative query count {}", n_q);
  if (shape.n_q_heads <= 0 || shape.n_kv_heads <= 0 || shape.head_dim <= 0) {
    fail("attention: bad shape (q heads {}, kv heads {}, head_dim {})", shape.n_q_heads, shape.n_kv_heads,
         shape.head_dim);
  }
  if (shape.kv_head_of_q == nullptr) fail("attention: kv_head_of_q is null");
  for (int32_t h = 0; h < shape.n_q_heads; ++h) {
    const int32_t g = shape.kv_head_of_q[h];
    if (g < 0 || g >= shape.n_kv_heads) {
      fail("attention: kv_head_of_q[{}] = {} not in [0, {})", h, g, shape.n_kv_heads);
    }
  }
  if (window < 0) fail("attention: negative window {}", window);
  if (n_blocks < 0) fail("attention: negative block count {}", n_blocks);
  if (n_blocks > 0 && blocks == nullptr) fail("attention: {} blocks but no block array", n_blocks);
  for (int64_t b = 0; b < n_blocks; ++b) {
    if (blocks[b].dtype != KvDtype::kF32 && blocks[b].dtype != KvDtype::kBf16) {
      fail("attention: block {} has an unknown KV dtype {}", b, static_cast<int>(blocks[b].dtype));
    }
    if (blocks[b].dtype != blocks[0].dtype) {
      fail("attention: block {} holds {} K/V, block 0 {}", b, kv_dtype_name(blocks[b].dtype), kv_dtype_name(blocks[0].dtype));
    }
    if (blocks[b].count < 0) fail("attention: block {} has negative count {}", b, blocks[b].count);
    if (blocks[b].count > 0 && (blocks[b].k == nullptr || blocks[b].v == nullptr)) {
      fail("attention: block {} (first position {}) has no key or value data", b, blocks[b].first_position);
    }
  }
  if (n_q > 0 && (q == nullptr || q_positions == nullptr)) fail("attention: {} queries but no query data", n_q);
}

bool visible(int32_t pos_q, int32_t pos_k, int32_t window) {
  const int64_t d = static_cast<int64_t>(pos_q) - pos_k;
  return d >= 0 && (window == 0 || d < window);
}

using TileFn = void (*)(const detail::AttnTileArgs&, const detail::AttnRow*, int);

TileFn tile_kernel(Isa isa, KvDtype dtype) {
  const bool bf16 = dtype == KvDtype::kBf16;
  switch (isa) {
    case Isa::kAvx512: return bf16 ? &detail::attention_tile_avx512_bf16 : &detail::attention_tile_avx512;
    case Isa::kAvx2: return bf16 ? &detail::attention_tile_avx2_bf16 : &detail::attention_tile_avx2;
    case Isa::kScalar: break;
  }
  return bf16 ? &detail::attention_tile_scalar_bf16 : &detail::attention_tile_scalar;
}

// Value c of cached row `row` (position j, KV head g: row j * n_kv_heads + g) of a block's k or v.
double kv_value(const void* data, KvDtype dtype, int64_t row, int64_t d, int64_t c) {
  if (dtype == KvDtype::kBf16) return bf16_to_f32(static_cast<const uint16_t*>(data)[row * d + c]);
  return static_cast<const float*>(data)[row * d + c];
}

}  // namespace

size_t kv_dtype_bytes(KvDtype dtype) { return dtype == KvDtype::kBf16 ? 2 : 4; }

const char* kv_dtype_name(KvDtype dtype) { return dtype == KvDtype::kBf16 ? "bf16" : "f32"; }

KvDtype parse_kv_dtype(std::string_view name) {
  if (name == "f32") return KvDtype::kF32;
  if (name == "bf16") return KvDtype::kBf16;
  fail("KV cache dtype must be f32 or bf16 (got '{}')", name);
}

namespace {

// Keys are attended in aligned chunks of this many positions, each chunk's partial result (output +
// log-sum-exp) merged into the whole in the chunks' order. The split depends on positions only, so a
// row's result does not depend on the thread count or the other rows; it lets a decode over few KV
// heads spread its keys over the threads (8 query heads on 1 KV head, head dim 512, 65536 positions,
// two threads: each thread read all of the head's keys before). At most one chunk, nothing changes.
constexpr int64_t kAttnKeyChunk = 4096;
// A chunked call keeps every chunk's partial at once (all chunks' tiles in one parallel loop) up to
// this many bytes (detail::set_attention_partial_bytes: tests); beyond (a long prefill) the chunks
// run one after the other, each merged at once. Either way the same results, bit for bit.
std::atomic<double> g_chunk_partial_bytes{64.0 * 1024 * 1024};

// The non-empty blocks cut at chunk boundaries, grouped by chunk in ascending order (each chunk's
// views in the blocks' order).
std::vector<std::vector<KvBlockView>> chunk_views(const KvBlockView* blocks, int64_t n_blocks, int64_t row_values) {
  std::map<int64_t, std::vector<KvBlockView>> by_chunk;
  for (int64_t b = 0; b < n_blocks; ++b) {
    const KvBlockView& blk = blocks[b];
    if (blk.count <= 0) continue;
    const int64_t row_bytes = row_values * static_cast<int64_t>(kv_dtype_bytes(blk.dtype));
    const int64_t first = blk.first_position, end = first + blk.count;
    for (int64_t s = first; s < end;) {
      const int64_t c = detail::aligned_run(s, kAttnKeyChunk);
      const int64_t e = std::min(end, (c + 1) * kAttnKeyChunk);
      KvBlockView v = blk;
      v.k = static_cast<const char*>(blk.k) + (s - first) * row_bytes;
      v.v = static_cast<const char*>(blk.v) + (s - first) * row_bytes;
      v.first_position = static_cast<int32_t>(s);
      v.count = static_cast<int32_t>(e - s);
      by_chunk[c].push_back(v);
      s = e;
    }
  }
  std::vector<std::vector<KvBlockView>> chunks;
  for (auto& [c, views] : by_chunk) chunks.push_back(std::move(views));
  return chunks;
}

struct Tile {
  int64_t first_row;
  int n_rows;
  int32_t kv_head;
};

// The (query, head) rows writing into out/lse, ordered by (KV head, query, query head), and their
// tiles of up to rows_per_tile rows that never mix KV heads.
void make_rows(const float* q, int64_t n_q, const int32_t* q_positions, const AttentionShape& shape, float* out,
               float* lse, int64_t rows_per_tile, std::vector<detail::AttnRow>& rows, std::vector<Tile>& tiles) {
  const int64_t hq = shape.n_q_heads, d = shape.head_dim;
  rows.clear();
  tiles.clear();
  rows.reserve(static_cast<size_t>(n_q * hq));
  for (int32_t g = 0; g < shape.n_kv_heads; ++g) {
    const int64_t group_start = static_cast<int64_t>(rows.size());
    for (int64_t i = 0; i < n_q; ++i) {
      for (int64_t h = 0; h < hq; ++h) {
        if (shape.kv_head_of_q[h] != g) continue;
        const int64_t row = i * hq + h;
        rows.push_back({q + row * d, out + row * d, lse + row, q_positions[i]});
      }
    }
    const int64_t group_end = static_cast<int64_t>(rows.size());
    for (int64_t r = group_start; r < group_end; r += rows_per_tile) {
      tiles.push_back({r, static_cast<int>(std::min(rows_per_tile, group_end - r)), g});
    }
  }
}

}  // namespace

void detail::set_attention_partial_bytes(double bytes) { g_chunk_partial_bytes.store(bytes, std::memory_order_relaxed); }

void attention_partial(const float* q, int64_t n_q, const int32_t* q_positions, const AttentionShape& shape,
                       const KvBlockView* blocks, int64_t n_blocks, int32_t window, float scale, float* out,
                       float* lse) {
  check_args(q, n_q, q_positions, shape, blocks, n_blocks, window);
  if (n_q == 0) return;
  const int64_t hq = shape.n_q_heads, d = shape.head_dim;
  const int64_t n_rows = n_q * hq;
  std::vector<std::vector<KvBlockView>> chunks = chunk_views(blocks, n_blocks, shape.n_kv_heads * d);
  if (chunks.empty()) chunks.emplace_back();  // no key: every row gets out 0, lse -inf
  const int64_t n_chunks = static_cast<int64_t>(chunks.size());

  int64_t total_keys = 0;
  for (int64_t b = 0; b < n_blocks; ++b) total_keys += std::max<int32_t>(blocks[b].count, 0);
  const double work = static_cast<double>(n_rows) * static_cast<double>(std::max<int64_t>(total_keys, 1)) *
                      static_cast<double>(d);
  const int threads = work < 262144.0 ? 1 : omp_get_max_threads();
  const bool all_at_once =
      static_cast<double>(n_chunks - 1) * static_cast<double>(n_rows) * static_cast<double>(d + 1) * sizeof(float) <=
      g_chunk_partial_bytes.load(std::memory_order_relaxed);
  // Smaller tiles when there are few rows, so that every thread gets some (tiles of all chunks count
  // where they run together).
  const int64_t parallel_chunks = all_at_once ? n_chunks : 1;
  const int64_t rows_per_tile =
      std::clamp<int64_t>(n_rows * parallel_chunks / std::max(threads, 1), 1, detail::kAttnMaxRows);

  const TileFn fn = tile_kernel(active_isa(), n_blocks > 0 ? blocks[0].dtype : KvDtype::kF32);
  detail::AttnTileArgs base;
  base.kv_stride = static_cast<int64_t>(shape.n_kv_heads) * d;
  base.head_dim = d;
  base.window = window;
  base.scale = scale;
  // Where each chunk's partial goes: chunk 0 into out/lse, a later one into a slot of
  // part_out/part_lse (its own when all chunks run at once, else the one slot). The rows and tiles of
  // each destination are made once.
  const int64_t slots = all_at_once ? n_chunks - 1 : std::min<int64_t>(n_chunks - 1, 1);
  std::vector<float> part_out(static_cast<size_t>(slots * n_rows * d)), part_lse(static_cast<size_t>(slots * n_rows));
  struct Target {
    std::vector<detail::AttnRow> rows;
    std::vector<Tile> tiles;
  };
  std::vector<Target> targets(static_cast<size_t>(1 + slots));
  for (int64_t t = 0; t <= slots; ++t) {
    float* o = t == 0 ? out : part_out.data() + (t - 1) * n_rows * d;
    float* l = t == 0 ? lse : part_lse.data() + (t - 1) * n_rows;
    make_rows(q, n_q, q_positions, shape, o, l, rows_per_tile, targets[static_cast<size_t>(t)].rows,
              targets[static_cast<size_t>(t)].tiles);
  }
  const auto target_of = [&](int64_t c) { return c == 0 ? 0 : all_at_once ? c : 1; };
  // The tiles of chunks [c0, c1) in one parallel loop.
  struct Item {
    int64_t chunk;
    const Tile* tile;
  };
  std::vector<Item> items;
  const auto run_chunks = [&](int64_t c0, int64_t c1) {
    items.clear();
    for (int64_t c = c0; c < c1; ++c) {
      for (const Tile& tile : targets[static_cast<size_t>(target_of(c))].tiles) items.push_back({c, &tile});
    }
    const int64_t n_items = static_cast<int64_t>(items.size());
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
    for (int64_t i = 0; i < n_items; ++i) {
      const Item& item = items[static_cast<size_t>(i)];
      const std::vector<KvBlockView>& views = chunks[static_cast<size_t>(item.chunk)];
      detail::AttnTileArgs args = base;
      args.blocks = views.data();
      args.n_blocks = static_cast<int64_t>(views.size());
      args.kv_offset = static_cast<int64_t>(item.tile->kv_head) * d;
      fn(args, targets[static_cast<size_t>(target_of(item.chunk))].rows.data() + item.tile->first_row,
         item.tile->n_rows);
    }
  };
  if (all_at_once) {
    run_chunks(0, n_chunks);
    for (int64_t c = 1; c < n_chunks; ++c) {
      attention_merge(out, lse, part_out.data() + (c - 1) * n_rows * d, part_lse.data() + (c - 1) * n_rows, n_rows, d);
    }
  } else {
    run_chunks(0, 1);
    for (int64_t c = 1; c < n_chunks; ++c) {
      run_chunks(c, c + 1);
      attention_merge(out, lse, part_out.data(), part_lse.data(), n_rows, d);
    }
  }
}

void attention_partial_ref(const float* q, int64_t n_q, const int32_t* q_positions, const AttentionShape& shape,
                           const KvBlockView* blocks, int64_t n_blocks, int32_t window, float scale, float* out,
                           float* lse) {
  check_args(q, n_q, q_positions, shape, blocks, n_blocks, window);
  const int64_t hq = shape.n_q_heads, hkv = shape.n_kv_heads, d = shape.head_dim;
  std::vector<double> scores;
  std::vector<std::pair<const void*, int64_t>> values;  // (block's v, row)
  std::vector<double> acc(static_cast<size_t>(d));
  for (int64_t i = 0; i < n_q; ++i) {
    for (int64_t h = 0; h < hq; ++h) {
      const float* qh = q + (i * hq + h) * d;
      const int64_t g = shape.kv_head_of_q[h];
      scores.clear();
      values.clear();
      for (int64_t b = 0; b < n_blocks; ++b) {
        for (int64_t j = 0; j < blocks[b].count; ++j) {
          if (!visible(q_positions[i], static_cast<int32_t>(blocks[b].first_position + j), window)) continue;
          const int64_t row = j * hkv + g;
          double dot = 0.0;
          for (int64_t c = 0; c < d; ++c) dot += static_cast<double>(qh[c]) * kv_value(blocks[b].k, blocks[b].dtype, row, d, c);
          scores.push_back(static_cast<double>(scale) * dot);
          values.emplace_back(blocks[b].v, row);
        }
      }
      float* oh = out + (i * hq + h) * d;
      if (scores.empty()) {
        std::fill(oh, oh + d, 0.0f);
        lse[i * hq + h] = kNegInf;
        continue;
      }
      const double m = *std::max_element(scores.begin(), scores.end());
      double sum = 0.0;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (size_t j = 0; j < scores.size(); ++j) {
        const double p = std::exp(scores[j] - m);
        sum += p;
        for (int64_t c = 0; c < d; ++c) acc[c] += p * kv_value(values[j].first, blocks[0].dtype, values[j].second, d, c);
      }
      for (int64_t c = 0; c < d; ++c) oh[c] = static_cast<float>(acc[c] / sum);
      lse[i * hq + h] = static_cast<float>(m + std::log(sum));
    }
  }
}

void attention_merge(float* acc_out, float* acc_lse, const float* out, const float* lse, int64_t rows,
                     int64_t head_dim) {
  if (rows < 0 || head_dim < 0) fail("attention_merge: negative shape [{}, {}]", rows, head_dim);
  for (int64_t r = 0; r < rows; ++r) {
    const float l1 = acc_lse[r], l2 = lse[r];
    float* o1 = acc_out + r * head_dim;
    const float* o2 = out + r * head_dim;
    if (l2 == kNegInf) continue;  // nothing to add
    if (l1 == kNegInf) {
      std::copy(o2, o2 + head_dim, o1);
      acc_lse[r] = l2;
      continue;
    }
    // l = log(e^l1 + e^l2); weights e^(li - l) in double, applied in f32.
    const double m = std::max<double>(l1, l2);
    const double w1 = std::exp(static_cast<double>(l1) - m), w2 = std::exp(static_cast<double>(l2) - m);
    const double s = w1 + w2;
    const float a1 = static_cast<float>(w1 / s), a2 = static_cast<float>(w2 / s);
    for (int64_t c = 0; c < head_dim; ++c) o1[c] = o1[c] * a1 + o2[c] * a2;
    acc_lse[r] = static_cast<float>(m + std::log(s));
  }
}

}  // namespace shardlm
