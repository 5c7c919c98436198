// The planner's memory estimate against numbers computed independently from gemma4.md (parameter
// counts, KV bytes per token), and impossible plans: the errors say what would fit, and what they say
// is checked to be true.
#include <gtest/gtest.h>

#include <regex>
#include <string>

#include "common/error.h"
#include "model/tensor_names.h"
#include "model/variants.h"
#include "partition/byte_size.h"
#include "partition/plan.h"

namespace shardlm {
namespace {

constexpr int64_t kGiB = 1LL << 30;

PlanOptions options_for(int workers, const std::string& weights = "bf16", int64_t context = 0) {
  PlanOptions o;
  o.num_workers = workers;
  o.weights = weights;
  o.context_tokens = context;
  return o;
}

std::string error_of(const ModelConfig& c, const PlanOptions& o) {
  try {
    make_plan(c, o);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(PlanMemory, SingleWorkerF32WeightsAreFourBytesPerParameter) {
  // gemma4.md 5.1: 31B has 30,697,345,340 and 26B-A4B 25,233,141,790 text parameters.
  EXPECT_EQ(make_plan(variant_config("31b"), options_for(1, "f32")).workers[0].weight_bytes, 4 * 30697345340LL);
  EXPECT_EQ(make_plan(variant_config("26b-a4b"), options_for(1, "f32")).workers[0].weight_bytes,
            4 * 25233141790LL);
}

TEST(PlanMemory, WeightsOfAllWorkersAddUpToTheTensorList) {
  for (const std::string& v : variant_names()) {
    const ModelConfig& c = variant_config(v);
    int64_t elements = 0;
    for (const ExpectedTensor& t : expected_tensors(c)) {
      int64_t n = 1;
      for (int64_t d : t.shape) n *= d;
      elements += n;
    }
    EXPECT_EQ(make_plan(c, options_for(1, "f32")).workers[0].weight_bytes, 4 * elements) << v;
    // Split over more workers only adds replicated tensors: the sum never shrinks, each worker holds less.
    for (int w : {2, 3, 8}) {
      if (w > c.num_heads) continue;
      const Plan p = make_plan(c, options_for(w, "f32"));
      EXPECT_GE(p.total_weight_bytes(), 4 * elements) << v;
      for (const WorkerPlan& wp : p.workers) EXPECT_LT(wp.weight_bytes, 4 * elements) << v;
    }
  }
}

TEST(PlanMemory, QuantisedFormatsShrinkMatrices) {
  const ModelConfig& c = variant_config("31b");
  const int64_t bf16 = make_plan(c, options_for(1, "bf16")).workers[0].weight_bytes;
  const int64_t int8 = make_plan(c, options_for(1, "int8")).workers[0].weight_bytes;
  const int64_t q4 = make_plan(c, options_for(1, "q4")).workers[0].weight_bytes;
  // 61.4 GB at bf16 (gemma4.md 5.2); 8 bits per weight for int8 (per-row scales), 4.5 for q4.
  EXPECT_NEAR(bf16 / 1e9, 61.4, 0.1);
  EXPECT_NEAR(static_cast<double>(int8) / bf16, 8.0 / 16, 0.001);
  EXPECT_NEAR(static_cast<double>(q4) / bf16, 4.5 / 16, 0.001);
}

TEST(PlanMemory, KvBytesMatchTheSpecAtFullContext) {
  // gemma4.md 5.3 (bf16 KV): 31B full layers 8 KiB per token, sliding 16 KiB per cached position;
  // 26B-A4B 4 KiB and 8 KiB. Sliding layers cache window (1024) + one 512-token chunk.
  struct Expect {
    const char* variant;
    int full_layers, sliding_layers;
    int64_t full_per_token, sliding_per_position;
  };
  for (const Expect& e : {Expect{"31b", 10, 50, 8192, 16384}, Expect{"26b-a4b", 5, 25, 4096, 8192}}) {
    PlanOptions o = options_for(1, "bf16", 262144);
    o.kv_bytes_per_value = 2;
    const int64_t want = e.full_layers * 262144LL * e.full_per_token + e.sliding_layers * 1536LL * e.sliding_per_position;
    const Plan one = make_plan(variant_config(e.variant), o);
    EXPECT_EQ(one.workers[0].kv_bytes, want) << e.variant;
    // Split by sequence the full-layer KV is stored exactly once in total; only duplicated sliding KV adds.
    for (int w = 2; w <= 16; ++w) {
      o.num_workers = w;
      const Plan p = make_plan(variant_config(e.variant), o);
      int64_t duplicated = 0;
      for (const LayerTypeLayout& t : p.layer_types) {
        if (t.type == LayerType::kFull) {
          EXPECT_EQ(t.duplicated_kv_bytes, 0);
        }
        duplicated += t.duplicated_kv_bytes;
      }
      EXPECT_EQ(p.total_kv_bytes(), want + duplicated) << e.variant << " on " << w;
    }
  }
  // f32 KV and two sequences quadruple it.
  PlanOptions o = options_for(1, "bf16", 262144);
  o.kv_bytes_per_value = 4;
  o.max_sequences = 2;
  EXPECT_EQ(make_plan(variant_config("31b"), o).workers[0].kv_bytes,
            4 * (10 * 262144LL * 8192 + 50 * 1536LL * 16384));
}

TEST(PlanMemory, KvSharedLayersOwnNoCache) {
  const ModelConfig& c = variant_config("e2b");  // 15 of 35 layers own KV: 12 sliding + 3 full
  PlanOptions o = options_for(1, "bf16", 131072);
  o.kv_bytes_per_value = 2;
  // Sliding: 1 KV head x 256 x K,V x 2 B = 1 KiB per position, window 512 + chunk 512.
  EXPECT_EQ(make_plan(c, o).workers[0].kv_bytes, 3 * 131072LL * 2048 + 12 * 1024LL * 1024);
}

TEST(PlanErrors, OverBudgetSaysWhatFitsAndItIsTrue) {
  const ModelConfig& c = variant_config("31b");
  for (const char* weights : {"bf16", "f32"}) {
    for (int workers : {1, 2, 3}) {
      PlanOptions o = options_for(workers, weights, 262144);
      o.memory_per_worker_bytes = 24 * kGiB;
      const std::string m = error_of(c, o);
      ASSERT_FALSE(m.empty()) << weights << " on " << workers << " should not fit";
      EXPECT_NE(m.find("31b needs "), std::string::npos) << m;
      EXPECT_NE(m.find("budget 24.0 GiB"), std::string::npos) << m;
      EXPECT_NE(m.find(std::string("with ") + weights + " weights at 262144 context"), std::string::npos) << m;
      const std::string needs = format_bytes(make_layout(c, o).max_total_bytes());
      EXPECT_NE(m.find(needs), std::string::npos) << m;

      // "fits with N workers": N fits and N-1 does not.
      std::smatch match;
      ASSERT_TRUE(std::regex_search(m, match, std::regex("fits with (\\d+) workers"))) << m;
      const int n = std::stoi(match[1]);
      PlanOptions more = o;
      more.num_workers = n;
      EXPECT_NO_THROW(make_plan(c, more)) << m;
      more.num_workers = n - 1;
      EXPECT_GT(make_layout(c, more).max_total_bytes(), o.memory_per_worker_bytes) << m;

      // Any "--weights X on W" or "--context C on W" it offers does fit.
      if (std::regex_search(m, match, std::regex("--weights (\\w+) on (\\d+)"))) {
        PlanOptions alt = o;
        alt.weights = match[1];
        EXPECT_EQ(std::stoi(match[2]), workers);
        EXPECT_NO_THROW(make_plan(c, alt)) << m;
      }
      if (std::regex_search(m, match, std::regex("--context (\\d+) on (\\d+)"))) {
        PlanOptions alt = o;
        alt.context_tokens = std::stoll(match[1]);
        EXPECT_NO_THROW(make_plan(c, alt)) << m;
        alt.context_tokens += o.kv_block;  // the longest that fits
        EXPECT_THROW(make_plan(c, alt), Error) << m;
      }
    }
  }
}

TEST(PlanErrors, SuggestsASmallerWeightFormat) {
  // 26B-A4B at bf16 on 2 workers needs ~24 GiB of weights each; int8 halves that.
  PlanOptions o = options_for(2, "bf16", 8192);
  o.memory_per_worker_bytes = 20 * kGiB;
  const std::string m = error_of(variant_config("26b-a4b"), o);
  EXPECT_NE(m.find("--weights int8 on 2"), std::string::npos) << m;
  o.weights = "int8";
  EXPECT_NO_THROW(make_plan(variant_config("26b-a4b"), o));
}

TEST(PlanErrors, NothingFitsSaysSo) {
  PlanOptions o = options_for(4, "bf16", 4096);
  o.memory_per_worker_bytes = 64LL << 20;  // 64 MiB
  const std::string m = error_of(variant_config("31b"), o);
  EXPECT_NE(m.find("fits neither on up to 32 workers"), std::string::npos) << m;
}

TEST(PlanErrors, BadOptionsNameTheProblem) {
  const ModelConfig& c = variant_config("e2b");
  EXPECT_NE(error_of(c, options_for(9)).find("8 query heads"), std::string::npos);
  EXPECT_NE(error_of(c, options_for(0)).find("at least 1"), std::string::npos);
  EXPECT_NE(error_of(c, options_for(2, "fp8")).find("'fp8'"), std::string::npos);
  EXPECT_NE(error_of(c, options_for(2, "bf16", 200000)).find("max_position_embeddings (131072)"), std::string::npos);
  PlanOptions o = options_for(2);
  o.max_sequences = 0;
  EXPECT_NE(error_of(c, o).find("max sequences"), std::string::npos);
}

TEST(PlanTable, ShowsEveryWorkerAndTheSplits) {
  PlanOptions o = options_for(8, "bf16", 262144);
  o.memory_per_worker_bytes = 24 * kGiB;
  const ModelConfig& c = variant_config("31b");
  const Plan p = make_plan(c, o);
  const std::string t = format_plan_table(p, c);
  EXPECT_NE(t.find("Plan for 31b on 8 workers"), std::string::npos) << t;
  EXPECT_NE(t.find("split that KV head's cache by sequence"), std::string::npos) << t;
  EXPECT_NE(t.find("0 seq 0/2"), std::string::npos) << t;  // worker 0: full KV head 0, first of 2
  EXPECT_NE(t.find("3 seq 1/2"), std::string::npos) << t;  // worker 7: full KV head 3, second of 2
  EXPECT_NE(t.find(format_bytes(p.max_total_bytes()) + " of 24.0 GiB budget (fits)"), std::string::npos) << t;
  for (int w = 0; w < 8; ++w) EXPECT_NE(t.find("\n| " + std::to_string(w) + " "), std::string::npos) << t;

  // Sliding KV shared by workers shows as copies (duplicated KV).
  const ModelConfig& e = variant_config("e2b");
  const std::string te = format_plan_table(make_plan(e, options_for(3)), e);
  EXPECT_NE(te.find("0 (x3 copies)"), std::string::npos) << te;
  EXPECT_NE(te.find("duplicated KV"), std::string::npos) << te;
}

}  // namespace
}  // namespace shardlm
