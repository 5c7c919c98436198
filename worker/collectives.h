// The collectives the layer program needs between the workers of one model. A single process uses
// LocalCollectives (nothing to combine); the distributed runtime supplies one over its communicator.
#pragma once

#include <cstddef>

namespace shardlm {

class StepCollectives {
 public:
  virtual ~StepCollectives() = default;
  // Sums data element-wise across all workers; every worker gets the sum.
  virtual void all_reduce_sum(float* data, size_t count) = 0;
  virtual int num_workers() const = 0;
};

class LocalCollectives final : public StepCollectives {
 public:
  void all_reduce_sum(float*, size_t) override {}
  int num_workers() const override { return 1; }
};

}  // namespace shardlm
