#include "bench/median.h"

#include <gtest/gtest.h>

#include <vector>

#include "common/error.h"

namespace shardlm::bench {
namespace {

TEST(Median, MiddleOfAnOddCountInAnyOrder) {
  EXPECT_EQ(median({3.0}), 3.0);
  EXPECT_EQ(median({5.0, 1.0, 4.0}), 4.0);
  EXPECT_EQ(median({9.0, 2.0, 7.0, 1.0, 8.0}), 7.0);
}

TEST(Median, MeanOfTheMiddlePairOfAnEvenCount) {
  EXPECT_EQ(median({2.0, 1.0}), 1.5);
  EXPECT_EQ(median({10.0, 1.0, 4.0, 6.0}), 5.0);
}

TEST(Median, OfNothingIsAnError) {
  EXPECT_THROW(median(std::vector<double>{}), Error);
}

}  // namespace
}  // namespace shardlm::bench
