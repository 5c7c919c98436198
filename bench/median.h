// The median of a benchmark's repeated measurements (times, rates): the middle one of an odd count,
// the mean of the middle two of an even count; every benchmark reports its repeats this way.
#pragma once

#include <algorithm>
#include <vector>

#include "common/error.h"

namespace shardlm::bench {

inline double median(std::vector<double> samples) {
  if (samples.empty()) fail("the median of no measurements");
  std::sort(samples.begin(), samples.end());
  const size_t h = samples.size() / 2;
  return samples.size() % 2 == 1 ? samples[h] : (samples[h - 1] + samples[h]) / 2;
}

}  // namespace shardlm::bench
