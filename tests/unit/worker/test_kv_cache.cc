#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "common/error.h"
#include "common/half.h"
#include "worker/kv_cache.h"

namespace shardlm {
namespace {

ModelConfig two_layer_config() {
  ModelConfig c;
  c.num_layers = 2;
  c.num_heads = 2;
  c.sliding_window = 8;
  c.layers.resize(2);
  c.layers[0] = {LayerType::kSliding, 4, 1, false, 8, 0};
  c.layers[0].index = 0;
  c.layers[1] = {LayerType::kFull, 8, 1, true, 8, 1};
  c.layers[1].index = 1;
  c.vocab_size = 16;
  return c;
}

ShardSpec spec_for(const ModelConfig& c) {
  ShardSpec s;
  s.layers.resize(c.num_layers);
  for (auto& l : s.layers) {
    l.q_heads = {0, 2};
    l.kv_heads = {0, 1};
  }
  s.vocab_rows = {0, c.vocab_size};
  return s;
}

// Cache options with the given block size, full-attention capacity, chunk and sequences.
KvCacheOptions cache_options(int block_size, int64_t capacity, int max_chunk, int max_sequences = 1) {
  KvCacheOptions o;
  o.block_size = block_size;
  o.full_capacity_tokens = capacity;
  o.max_chunk = max_chunk;
  o.max_sequences = max_sequences;
  return o;
}

TEST(KvCache, FullPoolGrowsAndFrees) {
  ModelConfig c = two_layer_config();
  const KvCacheOptions o = cache_options(4, 16, 8, 2);
  KvCache kv(c, spec_for(c), o);
  EXPECT_EQ(kv.full_blocks_total(), 4);
  int a = kv.allocate_sequence();
  kv.prepare(a, 0, 6);
  EXPECT_EQ(kv.full_blocks_free(), 2);
  for (int p = 0; p < 6; ++p) kv.k_at(1, a, p)[0] = static_cast<float>(p);
  std::vector<KvBlockView> views;
  kv.views(1, a, 0, 5, views);
  ASSERT_EQ(views.size(), 2u);
  EXPECT_EQ(views[0].first_position, 0);
  EXPECT_EQ(views[0].count, 4);
  EXPECT_EQ(views[1].first_position, 4);
  EXPECT_EQ(views[1].count, 2);
  EXPECT_EQ(static_cast<const float*>(views[1].k)[8], 5.0f);  // position 5 = second slot of block 1, head_dim 8
  int b = kv.allocate_sequence();
  kv.prepare(b, 0, 8);
  EXPECT_EQ(kv.full_blocks_free(), 0);
  EXPECT_THROW(kv.prepare(a, 6, 9), Error);  // pool exhausted
  kv.release_sequence(b);
  EXPECT_EQ(kv.full_blocks_free(), 2);
  kv.prepare(a, 6, 9);
  EXPECT_THROW(
      {
        kv.allocate_sequence();
        kv.allocate_sequence();
      },
      Error);  // 2 slots only
}

TEST(KvCache, SlidingRingKeepsTheWindow) {
  ModelConfig c = two_layer_config();
  const KvCacheOptions o = cache_options(4, 64, 4);
  KvCache kv(c, spec_for(c), o);
  int s = kv.allocate_sequence();
  for (int p = 0; p < 40; p += 4) {
    kv.prepare(s, p, p + 4);
    for (int i = p; i < p + 4; ++i) kv.k_at(0, s, i)[0] = static_cast<float>(i);
    // The window of the chunk's first query and the chunk itself are all present and correct.
    std::vector<KvBlockView> views;
    const int lo = std::max(0, p - 7);
    kv.views(0, s, lo, p + 3, views);
    int seen = 0;
    for (const auto& v : views) {
      for (int j = 0; j < v.count; ++j) {
        const int pos = v.first_position + j;
        if (pos < lo) continue;
        EXPECT_EQ(static_cast<const float*>(v.k)[j * 4], static_cast<float>(pos));
        ++seen;
      }
    }
    EXPECT_EQ(seen, p + 4 - lo);
  }
  EXPECT_THROW(kv.prepare(s, 40, 45), Error);  // more than max_chunk in one step
}

TEST(KvCache, SequenceSplitStoresEveryCountthBlock) {
  ModelConfig c = two_layer_config();
  const KvCacheOptions o = cache_options(4, 64, 16);
  std::vector<int64_t> held(3, 0);
  for (int index = 0; index < 3; ++index) {
    ShardSpec s = spec_for(c);
    s.layers[1].kv_seq_index = index;
    s.layers[1].kv_seq_count = 3;
    KvCache kv(c, s, o);
    EXPECT_EQ(kv.seq_count(), 3);
    // 16 blocks of 4 positions over 3 workers: 6 blocks each at most, plus one per sequence.
    EXPECT_EQ(kv.full_blocks_total(), (16 + 2) / 3 + 1);
    EXPECT_LT(KvCache::planned_bytes(c, s, o), KvCache::planned_bytes(c, spec_for(c), o));
    EXPECT_EQ(kv.bytes(), KvCache::planned_bytes(c, s, o));
    const int seq = kv.allocate_sequence();
    kv.prepare(seq, 0, 16);
    kv.prepare(seq, 16, 30);
    for (int32_t p = 0; p < 30; ++p) {
      const bool mine = (p / 4) % 3 == index;
      EXPECT_EQ(kv.holds(1, p), mine) << p;
      EXPECT_TRUE(kv.holds(0, p));  // sliding layers are never split
      if (mine) {
        kv.k_at(1, seq, p)[0] = static_cast<float>(p);
        ++held[index];
      } else {
        EXPECT_THROW(kv.k_at(1, seq, p), Error);
      }
    }
    std::vector<KvBlockView> views;
    kv.views(1, seq, 0, 29, views);
    for (const KvBlockView& v : views) EXPECT_EQ((v.first_position / 4) % 3, index);
    EXPECT_EQ(kv.full_blocks_total() - kv.full_blocks_free(), static_cast<int64_t>(views.size()));
    kv.release_sequence(seq);
    EXPECT_EQ(kv.full_blocks_free(), kv.full_blocks_total());
  }
  EXPECT_EQ(held[0] + held[1] + held[2], 30);  // every position held exactly once
}

// A bf16 cache: half the bytes of an f32 one, each written value rounded to nearest even (what the
// views hold is f32_to_bf16 of it), K and V in their own arrays; k_at / v_at refuse it.
TEST(KvCache, Bf16CacheStoresRoundedValuesInHalfTheBytes) {
  ModelConfig c = two_layer_config();
  const KvCacheOptions o = cache_options(4, 16, 8);
  KvCacheOptions bf16 = o;
  bf16.dtype = KvDtype::kBf16;
  KvCache f32_cache(c, spec_for(c), o);
  KvCache kv(c, spec_for(c), bf16);
  EXPECT_EQ(kv.dtype(), KvDtype::kBf16);
  EXPECT_EQ(kv.bytes() * 2, f32_cache.bytes());
  EXPECT_EQ(kv.bytes(), KvCache::planned_bytes(c, spec_for(c), bf16));
  const int s = kv.allocate_sequence();
  kv.prepare(s, 0, 6);
  EXPECT_THROW(kv.k_at(1, s, 0), Error);
  EXPECT_THROW(kv.v_at(0, s, 0), Error);
  // Layer 1: one KV head of 8 values per position; layer 0: one of 4.
  const float specials[] = {1.0f + 1.0f / 256.0f, -3.0e-39f, 65504.5f, INFINITY, -0.0f, 1.00390625f, 1.01171875f, 3.14159265f};
  for (int p = 0; p < 6; ++p) {
    std::vector<float> k(8), v(8);
    for (int i = 0; i < 8; ++i) {
      k[i] = specials[i] * static_cast<float>(p + 1);
      v[i] = -k[i] + 0.1f * static_cast<float>(i);
    }
    kv.write(1, s, p, k.data(), v.data());
    kv.write(0, s, p, v.data(), k.data());
  }
  for (int layer : {0, 1}) {
    const int dim = layer == 1 ? 8 : 4;
    std::vector<KvBlockView> views;
    kv.views(layer, s, 0, 5, views);
    ASSERT_EQ(views.size(), 2u);
    for (const KvBlockView& view : views) {
      EXPECT_EQ(view.dtype, KvDtype::kBf16);
      for (int j = 0; j < view.count; ++j) {
        const int p = view.first_position + j;
        for (int i = 0; i < dim; ++i) {
          const float k = specials[i] * static_cast<float>(p + 1), v = -k + 0.1f * static_cast<float>(i);
          const float want_k = layer == 1 ? k : v, want_v = layer == 1 ? v : k;
          EXPECT_EQ(static_cast<const uint16_t*>(view.k)[j * dim + i], f32_to_bf16(want_k)) << layer << " " << p << " " << i;
          EXPECT_EQ(static_cast<const uint16_t*>(view.v)[j * dim + i], f32_to_bf16(want_v)) << layer << " " << p << " " << i;
        }
      }
    }
  }
}

}  // namespace
}  // namespace shardlm
