// The step plan rank 0 sends to the workers: row requests with penalties and logit biases survive
// the encoding, and inconsistent ones are refused by name.
#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "common/error.h"
#include "proto/step.pb.h"
#include "proto/step_message.h"

namespace shardlm {
namespace {

StepBatch two_sequences() {
  StepBatch b;
  b.add(0, 0, {2, 10, 11}, false, true);
  b.add(1, 7, {12}, false, true);
  return b;
}

TEST(StepPlan, PenaltiesAndBiasesRoundTrip) {
  const StepBatch batch = two_sequences();
  std::vector<RowRequest> rows(2);
  rows[0] = RowRequest{64, 0.7f};
  LogitPenalties p;
  p.repetition = 1.3f;
  p.presence = -0.5f;
  p.frequency = 2.0f;
  p.tokens = {3, 10, 400};
  p.counts = {-1, 0, 4};
  p.biases = {-100.0f, 0.0f, 2.5f};
  rows[1] = RowRequest{1, 0.0f, p};
  rows[1].target = 77;
  std::vector<RowRequest> back;
  bool full = true;
  decode_step_plan(encode_step_plan(batch, rows, false), back, full);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_FALSE(full);
  EXPECT_FALSE(back[0].penalties.active());
  EXPECT_EQ(back[0].candidates, 64);
  const LogitPenalties& q = back[1].penalties;
  EXPECT_EQ(q.repetition, 1.3f);
  EXPECT_EQ(q.presence, -0.5f);
  EXPECT_EQ(q.frequency, 2.0f);
  EXPECT_EQ(q.tokens, p.tokens);
  EXPECT_EQ(q.counts, p.counts);
  EXPECT_EQ(q.biases, p.biases);
  EXPECT_EQ(back[0].target, -1);
  EXPECT_EQ(back[1].target, 77);
}

TEST(StepPlan, InconsistentPenaltiesAreRefused) {
  const StepBatch batch = two_sequences();
  const auto error_of = [&](const std::function<void(step::RowRequest&)>& spoil) {
    std::vector<RowRequest> rows(2, RowRequest{1, 1.0f});
    rows[1].penalties.tokens = {4, 9};
    rows[1].penalties.counts = {0, 2};
    step::StepPlan plan;
    const std::vector<uint8_t> good = encode_step_plan(batch, rows, false);
    EXPECT_TRUE(plan.ParseFromArray(good.data(), static_cast<int>(good.size())));
    spoil(*plan.mutable_rows(1));
    std::vector<uint8_t> bytes(plan.ByteSizeLong());
    plan.SerializeToArray(bytes.data(), static_cast<int>(bytes.size()));
    std::vector<RowRequest> back;
    bool full = false;
    try {
      decode_step_plan(bytes, back, full);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_EQ(error_of([](step::RowRequest&) {}), "accepted");
  EXPECT_EQ(error_of([](step::RowRequest& m) { m.add_penalty_counts(1); }), "step message: 3 penalty counts for 2 tokens");
  EXPECT_EQ(error_of([](step::RowRequest& m) { m.add_penalty_biases(1.0f); }), "step message: 1 logit biases for 2 tokens");
  EXPECT_EQ(error_of([](step::RowRequest& m) { m.set_penalty_tokens(1, 4); }), "step message: penalty tokens are not ascending ids");
  EXPECT_EQ(error_of([](step::RowRequest& m) { m.set_penalty_tokens(0, -1); }), "step message: penalty tokens are not ascending ids");
  EXPECT_EQ(error_of([](step::RowRequest& m) { m.set_penalty_counts(0, -2); }), "step message: a penalty count below -1");
  EXPECT_NE(error_of([](step::RowRequest& m) { m.set_repetition_penalty(0.0f); }).find("penalties out of range"), std::string::npos);
  EXPECT_EQ(error_of([](step::RowRequest& m) {
              m.add_penalty_biases(1.0f);
              m.add_penalty_biases(std::numeric_limits<float>::infinity());
            }),
            "step message: a logit bias is NaN or +inf");
}

}  // namespace
}  // namespace shardlm
