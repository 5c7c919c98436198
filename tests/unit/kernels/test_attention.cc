// Attention partials on every ISA path: against the naive double-precision reference (1e-5) (GQA mappings,
// head dims 64..512 incl. a tail, sliding/causal masks, blocks of any size), merge of partials over
// any split of the blocks == attention over all of them, exact sliding-window edges, queries that
// see no key, batch/thread invariance (also over several key chunks), the same results however the
// keys are cut into blocks, and argument errors.
#include "kernels/attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include "common/error.h"
#include "common/half.h"
#include "kernels/attention_simd.h"
#include "tests/unit/kernels/test_util.h"

namespace shardlm {
namespace {

using testing::random_vector;
using testing::runnable_isas;
using testing::ScopedIsa;
using testing::ScopedThreads;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Keys/values for positions [first, first + total) cut into blocks of the given sizes.
struct KvSet {
  int64_t n_kv = 0, dim = 0;
  std::vector<float> k, v;
  std::vector<KvBlockView> blocks;

  KvSet(int64_t n_kv_heads, int64_t head_dim, int32_t first, const std::vector<int32_t>& sizes, uint32_t seed,
        float k_range = 1.0f)
      : n_kv(n_kv_heads), dim(head_dim) {
    const int64_t total = std::accumulate(sizes.begin(), sizes.end(), int64_t{0});
    k = random_vector(static_cast<size_t>(total * n_kv * dim), seed, -k_range, k_range);
    v = random_vector(static_cast<size_t>(total * n_kv * dim), seed + 1);
    int64_t offset = 0;
    for (const int32_t size : sizes) {
      // Empty blocks point at nothing.
      const float* kp = size > 0 ? k.data() + offset * n_kv * dim : nullptr;
      const float* vp = size > 0 ? v.data() + offset * n_kv * dim : nullptr;
      blocks.push_back({kp, vp, static_cast<int32_t>(first + offset), size});
      offset += size;
    }
  }
};

struct Result {
  std::vector<float> out, lse;
};

Result run(bool reference, const std::vector<float>& q, const std::vector<int32_t>& pos, const AttentionShape& shape,
           const KvBlockView* blocks, int64_t n_blocks, int32_t window, float scale) {
  const int64_t n_q = static_cast<int64_t>(pos.size());
  Result r;
  r.out.assign(static_cast<size_t>(n_q * shape.n_q_heads * shape.head_dim), std::nanf(""));
  r.lse.assign(static_cast<size_t>(n_q * shape.n_q_heads), std::nanf(""));
  if (reference) {
    attention_partial_ref(q.data(), n_q, pos.data(), shape, blocks, n_blocks, window, scale, r.out.data(), r.lse.data());
  } else {
    attention_partial(q.data(), n_q, pos.data(), shape, blocks, n_blocks, window, scale, r.out.data(), r.lse.data());
  }
  return r;
}

::testing::AssertionResult close(const Result& a, const Result& b, double tol) {
  for (size_t i = 0; i < a.lse.size(); ++i) {
    if (std::isinf(a.lse[i]) || std::isinf(b.lse[i])) {
      if (a.lse[i] != b.lse[i]) return ::testing::AssertionFailure() << "lse " << i << ": " << a.lse[i] << " vs " << b.lse[i];
      continue;
    }
    if (!(std::fabs(a.lse[i] - b.lse[i]) <= tol * (1.0 + std::fabs(b.lse[i])))) {
      return ::testing::AssertionFailure() << "lse " << i << ": " << a.lse[i] << " vs " << b.lse[i];
    }
  }
  for (size_t i = 0; i < a.out.size(); ++i) {
    // values are in [-1, 1], so outputs are too: absolute tolerance
    if (!(std::fabs(a.out[i] - b.out[i]) <= tol)) {
      return ::testing::AssertionFailure() << "out " << i << ": " << a.out[i] << " vs " << b.out[i];
    }
  }
  return ::testing::AssertionSuccess();
}

TEST(Attention, MatchesNaiveReferenceOnEveryPath) {
  struct Case {
    int64_t dim;
    int64_t n_q;
    std::vector<int32_t> kv_head_of_q;
    int32_t n_kv;
  };
  const std::vector<Case> cases = {
      {64, 70, {0, 0, 1, 1}, 2}, {100, 5, {1, 0, 1, 0}, 2}, {128, 17, {0, 0, 0, 0}, 1},
      {256, 5, {0, 1, 2, 3}, 4}, {512, 3, {0, 0, 1, 1}, 2},  {72, 1, {1, 1, 0, 0}, 2}};
  const std::vector<int32_t> sizes = {5, 64, 1, 0, 130, 37};  // 237 keys, positions 0..236
  int checked = 0;
  for (const Case& c : cases) {
    const AttentionShape shape{4, c.n_kv, static_cast<int32_t>(c.dim), c.kv_head_of_q.data()};
    const KvSet kv(c.n_kv, c.dim, 0, sizes, static_cast<uint32_t>(c.dim), 2.0f / std::sqrt(static_cast<float>(c.dim)) * 4);
    const auto q = random_vector(static_cast<size_t>(c.n_q * 4 * c.dim), static_cast<uint32_t>(c.dim + 1));
    // Prefill-like: the last n_q positions; plus a query in the middle (sees only earlier keys).
    std::vector<int32_t> pos(static_cast<size_t>(c.n_q));
    for (int64_t i = 0; i < c.n_q; ++i) pos[i] = static_cast<int32_t>(237 - c.n_q + i);
    pos[0] = 60;
    for (const int32_t window : {0, 8, 100}) {
      for (const float scale : {1.0f, 0.125f}) {
        const Result ref = run(true, q, pos, shape, kv.blocks.data(), static_cast<int64_t>(kv.blocks.size()), window, scale);
        for (const Isa isa : runnable_isas()) {
          ScopedIsa scoped(isa);
          const Result got = run(false, q, pos, shape, kv.blocks.data(), static_cast<int64_t>(kv.blocks.size()), window, scale);
          ASSERT_TRUE(close(got, ref, 1e-5)) << isa_name(isa) << " dim " << c.dim << " window " << window
                                             << " scale " << scale;
          ++checked;
        }
      }
    }
  }
  EXPECT_EQ(checked, static_cast<int>(cases.size() * 6 * runnable_isas().size()));
}

// Partials over any grouping of the blocks, merged, equal attention over all blocks.
TEST(Attention, MergeOfSplitsEqualsWhole) {
  const int64_t dim = 128, n_q = 9;
  const std::vector<int32_t> map = {0, 1, 1, 0};
  const AttentionShape shape{4, 2, static_cast<int32_t>(dim), map.data()};
  const KvSet kv(2, dim, 10, {3, 50, 64, 1, 65, 20}, 7, 0.4f);  // positions 10..212
  const auto q = random_vector(static_cast<size_t>(n_q * 4 * dim), 8);
  std::vector<int32_t> pos(n_q);
  for (int64_t i = 0; i < n_q; ++i) pos[i] = static_cast<int32_t>(204 + i);
  pos[1] = 12;  // sees only the first block (and 2 keys of it)
  pos[2] = 5;   // sees nothing
  const std::vector<std::vector<std::vector<int>>> splits = {
      {{0, 1, 2, 3, 4, 5}}, {{0}, {1}, {2}, {3}, {4}, {5}}, {{0, 1}, {2, 3, 4}, {5}}, {{5, 2}, {0, 4}, {3, 1}}};
  for (const Isa isa : runnable_isas()) {
    ScopedIsa scoped(isa);
    for (const int32_t window : {0, 8, 70}) {
      const Result whole = run(false, q, pos, shape, kv.blocks.data(), 6, window, 1.0f);
      const Result ref = run(true, q, pos, shape, kv.blocks.data(), 6, window, 1.0f);
      ASSERT_TRUE(close(whole, ref, 1e-5));
      for (const auto& split : splits) {
        Result acc;
        acc.out.assign(whole.out.size(), 0.0f);
        acc.lse.assign(whole.lse.size(), kNegInf);  // empty accumulator
        for (const auto& group : split) {
          std::vector<KvBlockView> views;
          for (int b : group) views.push_back(kv.blocks[b]);
          const Result part = run(false, q, pos, shape, views.data(), static_cast<int64_t>(views.size()), window, 1.0f);
          attention_merge(acc.out.data(), acc.lse.data(), part.out.data(), part.lse.data(), n_q * 4, dim);
        }
        ASSERT_TRUE(close(acc, whole, 1e-6)) << isa_name(isa) << " window " << window << " groups " << split.size();
      }
      // the query that sees nothing
      for (int h = 0; h < 4; ++h) {
        EXPECT_EQ(whole.lse[2 * 4 + h], kNegInf);
        for (int64_t c = 0; c < dim; ++c) EXPECT_EQ(whole.out[(2 * 4 + h) * dim + c], 0.0f);
      }
    }
  }
}

// With q = 0 every visible key has weight 1/count; one-hot values reveal exactly which are visible.
TEST(Attention, SlidingWindowEdgesAreExact) {
  const int64_t dim = 64, total = 40;
  const std::vector<int32_t> map = {0};
  const AttentionShape shape{1, 1, static_cast<int32_t>(dim), map.data()};
  std::vector<float> k(total * dim, 0.5f), v(total * dim, 0.0f);
  for (int64_t j = 0; j < total; ++j) v[j * dim + j] = 1.0f;  // value of position j = e_j
  const std::vector<KvBlockView> blocks = {{k.data(), v.data(), 0, 13}, {k.data() + 13 * dim, v.data() + 13 * dim, 13, 27}};
  const std::vector<float> q(3 * dim, 0.0f);
  const std::vector<int32_t> pos = {20, 7, 39};
  for (const Isa isa : runnable_isas()) {
    ScopedIsa scoped(isa);
    for (const int32_t window : {0, 1, 8}) {
      const Result r = run(false, q, pos, shape, blocks.data(), 2, window, 1.0f);
      for (size_t i = 0; i < pos.size(); ++i) {
        const int32_t p = pos[i];
        const int32_t first_visible = window == 0 ? 0 : std::max(0, p - window + 1);
        const int32_t count = p - first_visible + 1;
        EXPECT_NEAR(r.lse[i], std::log(static_cast<float>(count)), 1e-6) << isa_name(isa);
        for (int32_t c = 0; c < dim; ++c) {
          const float expect = (c >= first_visible && c <= p) ? 1.0f / count : 0.0f;
          ASSERT_NEAR(r.out[i * dim + c], expect, 1e-7)
              << isa_name(isa) << " window " << window << " query " << p << " key " << c;
        }
      }
      if (window == 8) {  // key q-7 visible, q-8 not
        EXPECT_GT(r.out[0 * dim + 13], 0.1f);
        EXPECT_EQ(r.out[0 * dim + 12], 0.0f);
      }
    }
  }
}

TEST(Attention, QueriesWithoutVisibleKeys) {
  const int64_t dim = 64;
  const std::vector<int32_t> map = {0, 0};
  const AttentionShape shape{2, 1, static_cast<int32_t>(dim), map.data()};
  const KvSet kv(1, dim, 100, {16, 16}, 3);  // positions 100..131
  const auto q = random_vector(static_cast<size_t>(2 * 2 * dim), 4);
  for (const Isa isa : runnable_isas()) {
    ScopedIsa scoped(isa);
    // before every key; and far after it with a window
    for (const auto& [p, window] : {std::pair<int32_t, int32_t>{99, 0}, {500, 16}}) {
      const std::vector<int32_t> pos = {p, p};
      const Result r = run(false, q, pos, shape, kv.blocks.data(), 2, window, 1.0f);
      for (float l : r.lse) EXPECT_EQ(l, kNegInf) << isa_name(isa);
      for (float o : r.out) EXPECT_EQ(o, 0.0f) << isa_name(isa);
    }
    const std::vector<int32_t> pos = {5, 6};
    const Result none = run(false, q, pos, shape, nullptr, 0, 0, 1.0f);
    for (float l : none.lse) EXPECT_EQ(l, kNegInf);
    for (float o : none.out) EXPECT_EQ(o, 0.0f);
  }
}

// A query's result does not depend on the other queries in the call or on the thread count.
TEST(Attention, BatchAndThreadInvariantBitExact) {
  const int64_t dim = 256, n_q = 24;
  const std::vector<int32_t> map = {0, 0, 0, 1, 1, 1};
  const AttentionShape shape{6, 2, static_cast<int32_t>(dim), map.data()};
  const KvSet kv(2, dim, 0, {100, 200, 33}, 5, 0.2f);
  const auto q = random_vector(static_cast<size_t>(n_q * 6 * dim), 6);
  std::vector<int32_t> pos(n_q);
  for (int64_t i = 0; i < n_q; ++i) pos[i] = static_cast<int32_t>(310 + i);
  for (const Isa isa : runnable_isas()) {
    ScopedIsa scoped(isa);
    Result batch;
    {
      ScopedThreads t(1);
      batch = run(false, q, pos, shape, kv.blocks.data(), 3, 64, 1.0f);
    }
    for (const int threads : {2, 3}) {
      ScopedThreads t(threads);
      const Result again = run(false, q, pos, shape, kv.blocks.data(), 3, 64, 1.0f);
      EXPECT_EQ(std::memcmp(again.out.data(), batch.out.data(), batch.out.size() * 4), 0) << threads;
      EXPECT_EQ(std::memcmp(again.lse.data(), batch.lse.data(), batch.lse.size() * 4), 0) << threads;
    }
    for (int64_t i = 0; i < n_q; i += 7) {
      const std::vector<float> qi(q.begin() + i * 6 * dim, q.begin() + (i + 1) * 6 * dim);
      const Result one = run(false, qi, {pos[i]}, shape, kv.blocks.data(), 3, 64, 1.0f);
      EXPECT_EQ(std::memcmp(one.out.data(), batch.out.data() + i * 6 * dim, one.out.size() * 4), 0) << isa_name(isa);
      EXPECT_EQ(std::memcmp(one.lse.data(), batch.lse.data() + i * 6, one.lse.size() * 4), 0) << isa_name(isa);
    }
  }
}

// Keys are taken in tiles of aligned runs of positions whatever blocks hold them: the same keys cut
// into blocks of any sizes (the KV cache's 16 positions, one block, uneven cuts, an empty block)
// give the same results bit for bit, with and without a sliding window, on every path.
TEST(Attention, ResultsDoNotDependOnHowTheKeysAreCutIntoBlocks) {
  const int64_t dim = 80, n_q = 40;
  const std::vector<int32_t> map = {0, 0, 0, 1, 1, 1};
  const AttentionShape shape{6, 2, static_cast<int32_t>(dim), map.data()};
  std::vector<int32_t> sixteens(18, 16);
  sixteens.push_back(12);
  const std::vector<std::vector<int32_t>> cuts = {{300}, sixteens, {7, 100, 57, 0, 136}, {59, 64, 64, 113}};
  std::vector<KvSet> sets;
  for (const auto& cut : cuts) sets.emplace_back(2, dim, 5, cut, 8, 0.5f);
  const auto q = random_vector(static_cast<size_t>(n_q * 6 * dim), 9);
  std::vector<int32_t> pos(n_q);
  for (int64_t i = 0; i < n_q; ++i) pos[i] = static_cast<int32_t>(265 + i);
  for (const Isa isa : runnable_isas()) {
    ScopedIsa scoped(isa);
    for (const int32_t window : {0, 100}) {
      const Result whole = run(false, q, pos, shape, sets[0].blocks.data(), 1, window, 1.0f);
      for (size_t c = 1; c < sets.size(); ++c) {
        const Result cut = run(false, q, pos, shape, sets[c].blocks.data(), static_cast<int64_t>(sets[c].blocks.size()),
                               window, 1.0f);
        EXPECT_EQ(std::memcmp(cut.out.data(), whole.out.data(), whole.out.size() * 4), 0)
            << isa_name(isa) << " window " << window << " cut " << c;
        EXPECT_EQ(std::memcmp(cut.lse.data(), whole.lse.data(), whole.lse.size() * 4), 0)
            << isa_name(isa) << " window " << window << " cut " << c;
      }
    }
  }
}

// Keys are attended in aligned chunks of 4096 positions, merged in order: over 9600 positions (three
// chunks, blocks of 16) the same bits at 1-3 threads, a query alone the same as in the batch, the
// chunks run all at once or one after the other the same, and the reference within 1e-5; with and
// without a window that crosses a chunk boundary.
TEST(Attention, LongContextChunksAreThreadAndBatchInvariant) {
  const int64_t dim = 32, n_q = 6;
  const std::vector<int32_t> map = {0, 0, 0, 0};
  const AttentionShape shape{4, 1, static_cast<int32_t>(dim), map.data()};
  const KvSet kv(1, dim, 0, std::vector<int32_t>(600, 16), 21, 0.3f);
  const auto q = random_vector(static_cast<size_t>(n_q * 4 * dim), 22);
  std::vector<int32_t> pos(n_q);
  for (int64_t i = 0; i < n_q; ++i) pos[i] = static_cast<int32_t>(9594 + i);
  const int64_t n_blocks = static_cast<int64_t>(kv.blocks.size());
  for (const Isa isa : runnable_isas()) {
    ScopedIsa scoped(isa);
    for (const int32_t window : {0, 5000}) {
      Result batch;
      {
        ScopedThreads t(1);
        batch = run(false, q, pos, shape, kv.blocks.data(), n_blocks, window, 1.0f);
      }
      EXPECT_TRUE(close(batch, run(true, q, pos, shape, kv.blocks.data(), n_blocks, window, 1.0f), 1e-5))
          << isa_name(isa) << " window " << window;
      for (const int threads : {2, 3}) {
        ScopedThreads t(threads);
        const Result again = run(false, q, pos, shape, kv.blocks.data(), n_blocks, window, 1.0f);
        EXPECT_EQ(std::memcmp(again.out.data(), batch.out.data(), batch.out.size() * 4), 0) << threads;
        EXPECT_EQ(std::memcmp(again.lse.data(), batch.lse.data(), batch.lse.size() * 4), 0) << threads;
      }
      {
        detail::set_attention_partial_bytes(0.0);  // the chunks one after the other
        const Result one_by_one = run(false, q, pos, shape, kv.blocks.data(), n_blocks, window, 1.0f);
        detail::set_attention_partial_bytes(64.0 * 1024 * 1024);
        EXPECT_EQ(std::memcmp(one_by_one.out.data(), batch.out.data(), batch.out.size() * 4), 0) << isa_name(isa);
        EXPECT_EQ(std::memcmp(one_by_one.lse.data(), batch.lse.data(), batch.lse.size() * 4), 0) << isa_name(isa);
      }
      for (const int64_t i : {int64_t{0}, n_q - 1}) {
        const std::vector<float> qi(q.begin() + i * 4 * dim, q.begin() + (i + 1) * 4 * dim);
        ScopedThreads t(2);
        const Result one = run(false, qi, {pos[i]}, shape, kv.blocks.data(), n_blocks, window, 1.0f);
        EXPECT_EQ(std::memcmp(one.out.data(), batch.out.data() + i * 4 * dim, one.out.size() * 4), 0) << isa_name(isa);
        EXPECT_EQ(std::memcmp(one.lse.data(), batch.lse.data() + i * 4, one.lse.size() * 4), 0) << isa_name(isa);
      }
    }
  }
}

TEST(Attention, MergeEdgeCases) {
  // empty + empty stays empty; empty + x = x; equal halves average with lse + log 2
  std::vector<float> acc_out = {0.0f, 0.0f}, acc_lse = {kNegInf};
  const std::vector<float> none_out = {0.0f, 0.0f}, none_lse = {kNegInf};
  attention_merge(acc_out.data(), acc_lse.data(), none_out.data(), none_lse.data(), 1, 2);
  EXPECT_EQ(acc_lse[0], kNegInf);
  const std::vector<float> a_out = {1.0f, -2.0f}, a_lse = {3.0f};
  attention_merge(acc_out.data(), acc_lse.data(), a_out.data(), a_lse.data(), 1, 2);
  EXPECT_EQ(acc_out, a_out);
  EXPECT_EQ(acc_lse[0], 3.0f);
  const std::vector<float> b_out = {3.0f, 2.0f}, b_lse = {3.0f};
  attention_merge(acc_out.data(), acc_lse.data(), b_out.data(), b_lse.data(), 1, 2);
  EXPECT_FLOAT_EQ(acc_out[0], 2.0f);
  EXPECT_FLOAT_EQ(acc_out[1], 0.0f);
  EXPECT_FLOAT_EQ(acc_lse[0], 3.0f + std::log(2.0f));
}

// bf16 K/V (a KvDtype::kBf16 cache): the kernels widen each value exactly, so on every ISA the result
// is bit for bit that of f32 K/V holding the same rounded values (dims with and without a vector
// tail, GQA, windows, decode and prefill queries), and it agrees with the reference read from bf16.
TEST(Attention, Bf16KvEqualsF32KvOfTheRoundedValues) {
  struct Case {
    int64_t dim;
    int64_t n_q;
    std::vector<int32_t> kv_head_of_q;
    int32_t n_kv;
  };
  const std::vector<Case> cases = {{64, 9, {0, 0, 1, 1}, 2}, {100, 3, {1, 0, 1, 0}, 2}, {256, 1, {0, 0, 1, 1}, 2}, {512, 4, {0, 0, 0, 0}, 1}};
  const std::vector<int32_t> sizes = {16, 64, 3, 90};  // positions 0..172
  for (const Case& c : cases) {
    const AttentionShape shape{4, c.n_kv, static_cast<int32_t>(c.dim), c.kv_head_of_q.data()};
    KvSet rounded(c.n_kv, c.dim, 0, sizes, static_cast<uint32_t>(c.dim + 5), 3.0f / std::sqrt(static_cast<float>(c.dim)) * 4);
    round_to_bf16(rounded.k.data(), rounded.k.size());
    round_to_bf16(rounded.v.data(), rounded.v.size());
    std::vector<uint16_t> k16(rounded.k.size()), v16(rounded.v.size());
    f32_to_bf16_row(rounded.k.data(), k16.data(), k16.size());
    f32_to_bf16_row(rounded.v.data(), v16.data(), v16.size());
    std::vector<KvBlockView> bf16_blocks;
    for (const KvBlockView& b : rounded.blocks) {
      const int64_t offset = (static_cast<const float*>(b.k) - rounded.k.data());
      bf16_blocks.push_back({k16.data() + offset, v16.data() + offset, b.first_position, b.count, KvDtype::kBf16});
    }
    const auto q = random_vector(static_cast<size_t>(c.n_q * 4 * c.dim), static_cast<uint32_t>(c.dim + 6));
    std::vector<int32_t> pos(static_cast<size_t>(c.n_q));
    for (int64_t i = 0; i < c.n_q; ++i) pos[i] = static_cast<int32_t>(173 - c.n_q + i);
    const int64_t nb = static_cast<int64_t>(sizes.size());
    for (const int32_t window : {0, 50}) {
      const Result ref_f32 = run(true, q, pos, shape, rounded.blocks.data(), nb, window, 1.0f);
      const Result ref_bf16 = run(true, q, pos, shape, bf16_blocks.data(), nb, window, 1.0f);
      EXPECT_EQ(std::memcmp(ref_f32.out.data(), ref_bf16.out.data(), ref_f32.out.size() * 4), 0) << c.dim;
      for (const Isa isa : runnable_isas()) {
        ScopedIsa scoped(isa);
        const Result f32 = run(false, q, pos, shape, rounded.blocks.data(), nb, window, 1.0f);
        const Result bf16 = run(false, q, pos, shape, bf16_blocks.data(), nb, window, 1.0f);
        EXPECT_EQ(std::memcmp(f32.out.data(), bf16.out.data(), f32.out.size() * 4), 0) << isa_name(isa) << " dim " << c.dim;
        EXPECT_EQ(std::memcmp(f32.lse.data(), bf16.lse.data(), f32.lse.size() * 4), 0) << isa_name(isa) << " dim " << c.dim;
        EXPECT_TRUE(close(bf16, ref_bf16, 1e-5)) << isa_name(isa) << " dim " << c.dim << " window " << window;
      }
    }
  }
}

TEST(Attention, RejectsBlocksOfMixedDtypes) {
  const int64_t dim = 64;
  const std::vector<int32_t> map = {0};
  const AttentionShape shape{1, 1, static_cast<int32_t>(dim), map.data()};
  const KvSet kv(1, dim, 0, {4, 4}, 1);
  std::vector<KvBlockView> blocks = kv.blocks;
  blocks[1].dtype = KvDtype::kBf16;
  const auto q = random_vector(static_cast<size_t>(dim), 2);
  try {
    run(false, q, {7}, shape, blocks.data(), 2, 0, 1.0f);
    FAIL() << "mixed dtypes accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bf16"), std::string::npos) << e.what();
  }
  EXPECT_THROW(run(true, q, {7}, shape, blocks.data(), 2, 0, 1.0f), Error);
}

TEST(Attention, RejectsBadArguments) {
  const int64_t dim = 64;
  std::vector<int32_t> map = {0, 2};
  const AttentionShape bad{2, 2, static_cast<int32_t>(dim), map.data()};
  const KvSet kv(2, dim, 0, {4}, 1);
  const auto q = random_vector(static_cast<size_t>(2 * dim), 2);
  const std::vector<int32_t> pos = {3};
  EXPECT_THROW(run(false, q, pos, bad, kv.blocks.data(), 1, 0, 1.0f), Error);
  map[1] = 1;
  const AttentionShape good{2, 2, static_cast<int32_t>(dim), map.data()};
  EXPECT_THROW(run(false, q, pos, good, kv.blocks.data(), 1, -1, 1.0f), Error);
  const KvBlockView missing{nullptr, nullptr, 0, 3};
  EXPECT_THROW(run(false, q, pos, good, &missing, 1, 0, 1.0f), Error);
  const AttentionShape no_map{2, 2, static_cast<int32_t>(dim), nullptr};
  EXPECT_THROW(run(false, q, pos, no_map, kv.blocks.data(), 1, 0, 1.0f), Error);
}

}  // namespace
}  // namespace shardlm
