// Property tests of the planner over every variant of the table and 1..16 workers: every query head,
// MLP column, expert and vocabulary row is owned exactly once; KV heads follow the owned query heads;
// full-layer KV position blocks are stored exactly once; splits are balanced within one granule; the
// checkpoint rectangles of all workers cover every expected tensor (model/tensor_names.h) exactly once
// (partitioned tensors), once per sharer (K/V of a shared head) or once per worker (replicated).
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "common/error.h"
#include "model/tensor_names.h"
#include "model/variants.h"
#include "partition/plan.h"

namespace shardlm {
namespace {

struct Case {
  std::string variant;
  int workers;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.variant << " on " << c.workers << " workers"; }

std::string case_name(const testing::TestParamInfo<Case>& info) {
  std::string v = info.param.variant;
  std::replace(v.begin(), v.end(), '-', '_');
  return v + "_w" + std::to_string(info.param.workers);
}

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (const std::string& v : variant_names()) {
    for (int w = 1; w <= 16; ++w) cases.push_back({v, w});
  }
  return cases;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

int layer_of(const ModelConfig& c, const std::string& name) {
  const std::string p = c.tensor_prefix + "layers.";
  if (name.compare(0, p.size(), p) != 0) return -1;
  return std::stoi(name.substr(p.size()));
}

// Sizes differ by at most `slack`.
void expect_balanced(const std::vector<int64_t>& sizes, int64_t slack, const std::string& what) {
  const auto [lo, hi] = std::minmax_element(sizes.begin(), sizes.end());
  EXPECT_LE(*hi - *lo, slack) << what;
}

// Each value of [0, total) owned by exactly one of the ranges, in worker order without gaps.
void expect_contiguous_cover(const std::vector<Range>& ranges, int64_t total, const std::string& what) {
  int64_t at = 0;
  for (const Range& r : ranges) {
    EXPECT_EQ(r.begin, at) << what;
    EXPECT_GE(r.size(), 0) << what;
    at = r.end;
  }
  EXPECT_EQ(at, total) << what;
}

class PlanProperties : public testing::TestWithParam<Case> {};

TEST_P(PlanProperties, OwnershipKvCoverageAndBalance) {
  const ModelConfig& c = variant_config(GetParam().variant);
  const int W = GetParam().workers;
  PlanOptions options;
  options.num_workers = W;
  if (W > c.num_heads) {
    try {
      make_plan(c, options);
      FAIL() << "expected an Error for " << W << " workers";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find(std::to_string(c.num_heads) + " query heads"), std::string::npos) << m;
      EXPECT_NE(m.find(std::to_string(W)), std::string::npos) << m;
    }
    return;
  }
  const Plan plan = make_plan(c, options);
  ASSERT_EQ(static_cast<int>(plan.workers.size()), W);
  for (int w = 0; w < W; ++w) {
    const ShardSpec& s = plan.workers[w].shard;
    EXPECT_EQ(s.worker, w);
    EXPECT_EQ(s.num_workers, W);
    ASSERT_EQ(static_cast<int>(s.layers.size()), c.num_layers);
  }

  std::vector<int64_t> total_experts(W, 0), total_columns(W, 0);
  std::set<int64_t> mlp_granules;
  for (int l = 0; l < c.num_layers; ++l) {
    const LayerGeometry& g = c.layers[l];
    const int nkv = g.num_kv_heads;
    const int group = c.num_heads / nkv;
    const std::string at = "layer " + std::to_string(l);

    // Query heads: contiguous, disjoint, complete; KV heads exactly those the query heads use.
    std::vector<Range> q, cols;
    std::vector<int> kv_users(nkv, 0);
    for (int w = 0; w < W; ++w) {
      const LayerShard& s = plan.workers[w].shard.layers[l];
      q.push_back(s.q_heads);
      cols.push_back(s.mlp_columns);
      ASSERT_GT(s.q_heads.size(), 0) << at;
      EXPECT_EQ(s.kv_heads.begin, s.q_heads.begin / group) << at;
      EXPECT_EQ(s.kv_heads.end, (s.q_heads.end - 1) / group + 1) << at;
      for (int64_t k = s.kv_heads.begin; k < s.kv_heads.end; ++k) ++kv_users[k];
      if (W <= nkv) {
        EXPECT_EQ(s.q_heads.size() % group, 0) << at << ": whole groups expected";
        EXPECT_EQ(s.kv_seq_count, 1) << at;
      } else {
        EXPECT_EQ(s.kv_heads.size(), 1) << at << ": one KV head per worker";
      }
      if (g.type == LayerType::kSliding) {
        EXPECT_EQ(s.kv_seq_count, 1) << at << ": sliding never split by sequence";
      }
    }
    expect_contiguous_cover(q, c.num_heads, at + " query heads");
    for (int k = 0; k < nkv; ++k) EXPECT_GE(kv_users[k], 1) << at << " KV head " << k;
    if (W <= nkv) {
      for (int k = 0; k < nkv; ++k) EXPECT_EQ(kv_users[k], 1) << at << ": KV head duplicated";
      std::vector<int64_t> groups;
      for (const Range& r : q) groups.push_back(r.size() / group);
      expect_balanced(groups, 1, at + " KV groups");
    } else {
      std::vector<int64_t> sharers(kv_users.begin(), kv_users.end());
      expect_balanced(sharers, 1, at + " sharers per KV head");
      for (int k = 0; k < nkv; ++k) {
        std::vector<int64_t> mine;
        for (int w = 0; w < W; ++w) {
          const LayerShard& s = plan.workers[w].shard.layers[l];
          if (s.kv_heads.begin == k) mine.push_back(s.q_heads.size());
        }
        expect_balanced(mine, 1, at + " query heads within KV head " + std::to_string(k));
      }
    }

    // Workers sharing one KV head are consecutive: w - kv_seq_index .. w - kv_seq_index + kv_seq_count - 1.
    for (int w = 0; w < W; ++w) {
      const LayerShard& s = plan.workers[w].shard.layers[l];
      for (int j = 0; j < s.kv_seq_count; ++j) {
        const int peer = w - s.kv_seq_index + j;
        ASSERT_TRUE(peer >= 0 && peer < W) << at;
        const LayerShard& p = plan.workers[peer].shard.layers[l];
        EXPECT_EQ(p.kv_heads.begin, s.kv_heads.begin) << at;
        EXPECT_EQ(p.kv_seq_index, j) << at;
        EXPECT_EQ(p.kv_seq_count, s.kv_seq_count) << at;
      }
    }

    // Full layers: every position block of every KV head is stored by exactly one worker.
    if (g.type == LayerType::kFull) {
      for (int k = 0; k < nkv; ++k) {
        for (int b = 0; b < 64; ++b) {
          int holders = 0;
          for (int w = 0; w < W; ++w) {
            const LayerShard& s = plan.workers[w].shard.layers[l];
            if (s.kv_heads.begin > k || s.kv_heads.end <= k) continue;
            ASSERT_GE(s.kv_seq_count, 1);
            ASSERT_LT(s.kv_seq_index, s.kv_seq_count);
            EXPECT_EQ(s.kv_seq_count, kv_users[k]) << at;
            if (b % s.kv_seq_count == s.kv_seq_index) ++holders;
          }
          EXPECT_EQ(holders, 1) << at << " KV head " << k << " block " << b;
        }
      }
    }

    // Dense MLP columns: contiguous cover, balanced within one granule, granule multiples.
    expect_contiguous_cover(cols, g.intermediate_size, at + " MLP columns");
    const bool granular = g.intermediate_size % kMlpColumnGranule == 0 && g.intermediate_size / kMlpColumnGranule >= W;
    std::vector<int64_t> col_sizes;
    for (int w = 0; w < W; ++w) {
      col_sizes.push_back(cols[w].size());
      total_columns[w] += cols[w].size();
      if (granular) {
        EXPECT_EQ(cols[w].size() % kMlpColumnGranule, 0) << at;
      }
    }
    mlp_granules.insert(granular ? kMlpColumnGranule : 1);
    expect_balanced(col_sizes, granular ? kMlpColumnGranule : 1, at + " MLP columns");

    // Experts: every expert exactly once, ascending, balanced within one expert.
    if (c.enable_moe) {
      std::vector<int> owners(c.num_experts, 0);
      std::vector<int64_t> counts;
      for (int w = 0; w < W; ++w) {
        const std::vector<int32_t>& e = plan.workers[w].shard.layers[l].experts;
        EXPECT_TRUE(std::is_sorted(e.begin(), e.end())) << at;
        for (int32_t id : e) {
          ASSERT_GE(id, 0);
          ASSERT_LT(id, c.num_experts);
          ++owners[id];
        }
        counts.push_back(static_cast<int64_t>(e.size()));
        total_experts[w] += static_cast<int64_t>(e.size());
      }
      for (int e = 0; e < c.num_experts; ++e) EXPECT_EQ(owners[e], 1) << at << " expert " << e;
      expect_balanced(counts, 1, at + " experts");
    } else {
      for (int w = 0; w < W; ++w) EXPECT_TRUE(plan.workers[w].shard.layers[l].experts.empty());
    }
  }
  // Extras rotate over the layers, so whole-model totals are balanced too.
  if (c.enable_moe) expect_balanced(total_experts, 1, "experts over all layers");
  expect_balanced(total_columns, mlp_granules.size() == 1 ? *mlp_granules.begin() : 2 * kMlpColumnGranule,
                  "MLP columns over all layers");

  // Vocabulary rows.
  std::vector<Range> vocab;
  std::vector<int64_t> vocab_sizes;
  for (const WorkerPlan& w : plan.workers) {
    vocab.push_back(w.shard.vocab_rows);
    vocab_sizes.push_back(w.shard.vocab_rows.size());
  }
  expect_contiguous_cover(vocab, c.vocab_size, "vocabulary rows");
  expect_balanced(vocab_sizes, kVocabRowGranule, "vocabulary rows");

  // Checkpoint rectangles against the independent expected-tensor list.
  std::map<std::string, std::vector<std::pair<int, TensorSlice>>> by_tensor;
  for (int w = 0; w < W; ++w) {
    for (const TensorSlice& r : plan.workers[w].reads) by_tensor[r.tensor].push_back({w, r});
  }
  std::set<std::string> expected_names;
  for (const ExpectedTensor& t : expected_tensors(c)) {
    expected_names.insert(t.name);
    int64_t rows = 1;
    for (size_t i = 0; i + 1 < t.shape.size(); ++i) rows *= t.shape[i];
    const int64_t cols = t.shape.back();
    const int l = layer_of(c, t.name);
    const bool kv = ends_with(t.name, "k_proj.weight") || ends_with(t.name, "v_proj.weight");
    const bool partitioned = ends_with(t.name, "q_proj.weight") || ends_with(t.name, "o_proj.weight") ||
                             ends_with(t.name, "mlp.gate_proj.weight") || ends_with(t.name, "mlp.up_proj.weight") ||
                             ends_with(t.name, "mlp.down_proj.weight") || ends_with(t.name, "experts.gate_up_proj") ||
                             ends_with(t.name, "experts.down_proj") || ends_with(t.name, "embed_tokens.weight") ||
                             ends_with(t.name, "embed_tokens_per_layer.weight") || t.name == "lm_head.weight";
    // Compressed grid: boundaries of every rectangle (and of KV heads for k/v).
    std::set<int64_t> rb{0, rows}, cb{0, cols};
    const auto& rects = by_tensor[t.name];
    ASSERT_FALSE(rects.empty()) << t.name << " is read by no worker";
    for (const auto& [w, r] : rects) {
      ASSERT_TRUE(r.rows.begin >= 0 && r.rows.end <= rows && r.rows.begin < r.rows.end) << t.name;
      ASSERT_TRUE(r.cols.begin >= 0 && r.cols.end <= cols && r.cols.begin < r.cols.end) << t.name;
      rb.insert(r.rows.begin);
      rb.insert(r.rows.end);
      cb.insert(r.cols.begin);
      cb.insert(r.cols.end);
    }
    if (kv) {
      for (int64_t x = 0; x <= rows; x += c.layers[l].head_dim) rb.insert(x);
    }
    const std::vector<int64_t> rv(rb.begin(), rb.end()), cv(cb.begin(), cb.end());
    std::vector<int> count((rv.size() - 1) * (cv.size() - 1), 0);
    for (const auto& [w, r] : rects) {
      for (size_t i = 0; i + 1 < rv.size(); ++i) {
        if (rv[i] < r.rows.begin || rv[i + 1] > r.rows.end) continue;
        for (size_t j = 0; j + 1 < cv.size(); ++j) {
          if (cv[j] >= r.cols.begin && cv[j + 1] <= r.cols.end) ++count[i * (cv.size() - 1) + j];
        }
      }
    }
    for (size_t i = 0; i + 1 < rv.size(); ++i) {
      int want = W;
      if (partitioned) want = 1;
      if (kv) {
        const int64_t head = rv[i] / c.layers[l].head_dim;
        want = 0;
        for (const WorkerPlan& wp : plan.workers) {
          const Range k = wp.shard.layers[l].kv_heads;
          if (head >= k.begin && head < k.end) ++want;
        }
      }
      for (size_t j = 0; j + 1 < cv.size(); ++j) {
        EXPECT_EQ(count[i * (cv.size() - 1) + j], want)
            << t.name << " rows [" << rv[i] << ", " << rv[i + 1] << ") cols [" << cv[j] << ", " << cv[j + 1] << ")";
      }
    }
  }
  for (const auto& [name, rects] : by_tensor) EXPECT_TRUE(expected_names.count(name)) << "unexpected read " << name;

  // Memory fields add up.
  for (const WorkerPlan& w : plan.workers) {
    EXPECT_GT(w.weight_bytes, 0);
    EXPECT_GT(w.kv_bytes, 0);
    EXPECT_EQ(w.total_bytes, w.weight_bytes + w.kv_bytes + w.activation_bytes);
  }
}

// One worker owns everything, exactly like the single-process shard.
TEST(PlanSingleWorker, EqualsFullShard) {
  for (const std::string& v : variant_names()) {
    const ModelConfig& c = variant_config(v);
    PlanOptions o;
    const ShardSpec got = make_plan(c, o).workers[0].shard;
    const ShardSpec want = full_shard(c);
    ASSERT_EQ(got.layers.size(), want.layers.size()) << v;
    for (size_t l = 0; l < want.layers.size(); ++l) {
      const LayerShard& a = got.layers[l];
      const LayerShard& b = want.layers[l];
      EXPECT_TRUE(a.q_heads.begin == b.q_heads.begin && a.q_heads.end == b.q_heads.end) << v << " " << l;
      EXPECT_TRUE(a.kv_heads.begin == b.kv_heads.begin && a.kv_heads.end == b.kv_heads.end) << v << " " << l;
      EXPECT_TRUE(a.mlp_columns.begin == b.mlp_columns.begin && a.mlp_columns.end == b.mlp_columns.end) << v;
      EXPECT_EQ(a.experts, b.experts) << v;
      EXPECT_EQ(a.kv_seq_index, 0);
      EXPECT_EQ(a.kv_seq_count, 1);
    }
    EXPECT_EQ(got.vocab_rows.end, want.vocab_rows.end) << v;
  }
}

INSTANTIATE_TEST_SUITE_P(AllVariants, PlanProperties, testing::ValuesIn(all_cases()), case_name);

}  // namespace
}  // namespace shardlm
