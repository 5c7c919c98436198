#include "engine/model_identity.h"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "engine/engine.h"

namespace shardlm {
namespace {

// FNV-1a, 64 bits: tells copies apart; not meant to resist anyone forging one.
class Fnv64 {
 public:
  void add(std::string_view bytes) {
    for (unsigned char c : bytes) {
      hash_ ^= c;
      hash_ *= 0x100000001b3ULL;
    }
    add_separator();
  }
  void add_separator() {
    hash_ ^= 0xff;
    hash_ *= 0x100000001b3ULL;
  }
  std::string hex() const { return fmt::format("{:016x}", hash_); }

 private:
  uint64_t hash_ = 0xcbf29ce484222325ULL;
};

}  // namespace

std::string config_fingerprint(const EngineOptions& o) {
  if (!o.synthetic.empty()) return fmt::format("synthetic {} ({} layers)", o.synthetic, o.synthetic_layers);
  const std::string path = (std::filesystem::path(o.model_dir) / "config.json").string();
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read {}", path);
  std::stringstream text;
  text << in.rdbuf();
  Fnv64 h;
  try {
    h.add(nlohmann::json::parse(text.str()).dump());  // keys sorted, no whitespace
  } catch (const nlohmann::json::exception& e) {
    fail("{}: {}", path, e.what());
  }
  return "config.json " + h.hex();
}

std::string weights_fingerprint(const EngineOptions& o, const Checkpoint& checkpoint) {
  if (checkpoint.is_synthetic()) return fmt::format("synthetic weights (seed {})", o.synthetic_seed);
  Fnv64 h;
  for (const std::string& name : checkpoint.names()) {
    const TensorInfo& t = checkpoint.info(name);
    h.add(name);
    h.add(fmt::format("{} {} {}", static_cast<int>(t.dtype), fmt::join(t.shape, "x"), t.nbytes()));
  }
  return fmt::format("{} tensors {}", checkpoint.names().size(), h.hex());
}

ModelIdentity model_identity(const EngineOptions& o, const Checkpoint& checkpoint) {
  return ModelIdentity{config_fingerprint(o), weights_fingerprint(o, checkpoint)};
}

}  // namespace shardlm
