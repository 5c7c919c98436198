// The collectives the layer program needs between the workers of one model. A single process uses
// LocalCollectives (nothing to combine); the distributed runtime supplies one over its communicator.
#pragma once

#include <algorithm>
#include <cstddef>

namespace shardlm {

class StepCollectives {
 public:
  virtual ~StepCollectives() = default;
  // Sums data element-wise across all workers; every worker gets the sum.
  virtual void all_reduce_sum(float* data, size_t count) = 0;
  // Element-wise maximum across all workers; every worker gets it.
  virtual void all_reduce_max(float* data, size_t count) = 0;
  virtual int num_workers() const = 0;
  // The group of workers that share the KV heads of the sequence-split layers (size 1 when there is
  // no split). set_kv_group is collective over all workers: same color = same group, ordered by key.
  virtual void set_kv_group(int color, int key) = 0;
  virtual int kv_group_size() const = 0;
  // Gathers `count` floats from every member of this worker's group into recv, in group order.
  virtual void kv_group_all_gather(const float* send, size_t count, float* recv) = 0;
};

class LocalCollectives final : public StepCollectives {
 public:
  void all_reduce_sum(float*, size_t) override {}
  void all_reduce_max(float*, size_t) override {}
  int num_workers() const override { return 1; }
  void set_kv_group(int, int) override {}
  int kv_group_size() const override { return 1; }
  void kv_group_all_gather(const float* send, size_t count, float* recv) override {
    std::copy(send, send + count, recv);
  }
};

}  // namespace shardlm
