// StepCollectives over a Communicator of the workers of one model (MPI or in-process threads).
#pragma once

#include "comm/communicator.h"
#include "worker/collectives.h"

namespace shardlm {

class CommCollectives final : public StepCollectives {
 public:
  explicit CommCollectives(comm::Communicator& workers) : comm_(workers) {}
  void all_reduce_sum(float* data, size_t count) override {
    if (comm_.size() > 1) comm_.all_reduce_sum(data, count);
  }
  int num_workers() const override { return comm_.size(); }

 private:
  comm::Communicator& comm_;
};

}  // namespace shardlm
