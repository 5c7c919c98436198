// StepCollectives over a Communicator of the workers of one model (MPI or in-process threads); counts
// the all-reduces, their bytes and the time spent in them (communication time of a step).
#pragma once

#include <algorithm>
#include <chrono>
#include <memory>
#include <vector>

#include "comm/communicator.h"
#include "worker/collectives.h"

namespace shardlm {

struct CollectiveCounters {
  int64_t count = 0;
  int64_t bytes = 0;
  double seconds = 0;
};

class CommCollectives final : public StepCollectives {
 public:
  explicit CommCollectives(comm::Communicator& workers) : comm_(workers) {}
  void all_reduce_sum(float* data, size_t count) override {
    if (comm_.size() <= 1) return;
    const auto t0 = std::chrono::steady_clock::now();
    comm_.all_reduce_sum(data, count);
    counters_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    counters_.count += 1;
    counters_.bytes += static_cast<int64_t>(count * sizeof(float));
  }
  // Load-time only (the int8 scales of column-split matrices): an all-gather, not counted in a step's
  // communication figures.
  void all_reduce_max(float* data, size_t count) override {
    if (comm_.size() <= 1) return;
    std::vector<float> all(count * static_cast<size_t>(comm_.size()));
    comm_.all_gather(data, count * sizeof(float), all.data());
    for (size_t i = 0; i < count; ++i) {
      for (int r = 0; r < comm_.size(); ++r) data[i] = std::max(data[i], all[static_cast<size_t>(r) * count + i]);
    }
  }
  int num_workers() const override { return comm_.size(); }
  void set_kv_group(int color, int key) override {
    group_.reset();
    if (comm_.size() > 1) group_ = comm_.split(color, key);
  }
  int kv_group_size() const override { return group_ ? group_->size() : 1; }
  void kv_group_all_gather(const float* send, size_t count, float* recv) override {
    if (!group_ || group_->size() == 1) {
      std::copy(send, send + count, recv);
      return;
    }
    const auto t0 = std::chrono::steady_clock::now();
    group_->all_gather(send, count * sizeof(float), recv);
    counters_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    counters_.count += 1;
    counters_.bytes += static_cast<int64_t>(count * sizeof(float) * group_->size());
  }
  // Returns the counters since the last call and resets them.
  CollectiveCounters take_counters() {
    CollectiveCounters c = counters_;
    counters_ = {};
    return c;
  }

 private:
  comm::Communicator& comm_;
  std::unique_ptr<comm::Communicator> group_;
  CollectiveCounters counters_;
};

}  // namespace shardlm
