// What tells two copies of a model apart, so that the coordinator can refuse a cluster whose ranks
// loaded different models (a stale copy on one host): a fingerprint of the config (config.json,
// whitespace and key order aside, or the synthetic variant) and one of the weights (every tensor's
// name, dtype, shape and size; the variant and seed for synthetic weights). Not a hash of the
// weights' bytes: reading 60 GB to start is too slow.
#pragma once

#include <string>

#include "model/checkpoint.h"
#include "worker/worker_loop.h"

namespace shardlm {

struct EngineOptions;

std::string config_fingerprint(const EngineOptions& options);
std::string weights_fingerprint(const EngineOptions& options, const Checkpoint& checkpoint);
ModelIdentity model_identity(const EngineOptions& options, const Checkpoint& checkpoint);

}  // namespace shardlm
