// ISA detection and overrides: set_isa_override clamps to the CPU, clear restores, and the
// SHARDLM_ISA environment variable (checked in a child process, as it is read once).
#include "kernels/cpu_features.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

namespace shardlm {
namespace {

TEST(CpuFeatures, OverrideLowersButNeverRaises) {
  const Isa best = detected_isa();
  if (std::getenv("SHARDLM_ISA") == nullptr) {
    EXPECT_EQ(active_isa(), best);
  }
  set_isa_override(Isa::kScalar);
  EXPECT_EQ(active_isa(), Isa::kScalar);
  set_isa_override(Isa::kAvx512);
  EXPECT_EQ(active_isa(), best);
  set_isa_override(Isa::kAvx2);
  EXPECT_EQ(active_isa(), best >= Isa::kAvx2 ? Isa::kAvx2 : Isa::kScalar);
  clear_isa_override();
  if (std::getenv("SHARDLM_ISA") == nullptr) {
    EXPECT_EQ(active_isa(), best);
  }
  EXPECT_STREQ(isa_name(Isa::kScalar), "scalar");
  EXPECT_STREQ(isa_name(Isa::kAvx2), "avx2");
  EXPECT_STREQ(isa_name(Isa::kAvx512), "avx512");
}

TEST(CpuFeatures, DetectionAgreesWithCpuid) {
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  EXPECT_EQ(detected_isa(), avx512 && avx2 ? Isa::kAvx512 : avx2 ? Isa::kAvx2 : Isa::kScalar);
}

// Runs this test binary's `test` in a child process with `variable`=`value` set; its exit status.
int run_self_with(const char* variable, const char* value, const char* test) {
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  const std::string cmd = std::string(variable) + "=" + value + " " + self + " --gtest_filter=" + test + " >/dev/null 2>&1";
  return std::system(cmd.c_str());
}

// Without an override the tuning is SHARDLM_PREFETCH's (an unknown name is ignored), else the
// vendor's. Run directly and, by EnvironmentVariableSelectsPrefetchTuning, in child processes.
TEST(CpuFeatures, PrefetchTuningFollowsEnvironmentVendorAndOverride) {
  __builtin_cpu_init();
  PrefetchTuning expect = __builtin_cpu_is("intel") ? PrefetchTuning::kIntel : PrefetchTuning::kZen;
  const char* env = std::getenv("SHARDLM_PREFETCH");
  bool named = false;
  for (PrefetchTuning t : {PrefetchTuning::kZen, PrefetchTuning::kIntel, PrefetchTuning::kStreams}) {
    if (env != nullptr && std::strcmp(env, prefetch_tuning_name(t)) == 0) {
      expect = t;
      named = true;
    }
  }
  EXPECT_EQ(prefetch_tuning_from_env(), named);
  EXPECT_EQ(prefetch_tuning(), expect) << "SHARDLM_PREFETCH=" << (env ? env : "(unset)");
  for (PrefetchTuning t : {PrefetchTuning::kIntel, PrefetchTuning::kStreams, PrefetchTuning::kZen}) {
    set_prefetch_tuning(t);
    EXPECT_EQ(prefetch_tuning(), t);
  }
  clear_prefetch_tuning();
  EXPECT_EQ(prefetch_tuning(), expect);
}

TEST(CpuFeatures, EnvironmentVariableSelectsPrefetchTuning) {
  for (const char* env : {"zen", "intel", "streams", "bogus"}) {
    EXPECT_EQ(run_self_with("SHARDLM_PREFETCH", env, "CpuFeatures.PrefetchTuningFollowsEnvironmentVendorAndOverride"), 0)
        << "SHARDLM_PREFETCH=" << env;
  }
}

// The active ISA is what SHARDLM_ISA asks for (clamped to the CPU), or the best one. Run directly
// and, by EnvironmentVariableSelectsIsa, in child processes with SHARDLM_ISA set.
TEST(CpuFeatures, ActiveIsaFollowsEnvironment) {
  const char* env = std::getenv("SHARDLM_ISA");
  Isa expect = detected_isa();
  if (env != nullptr && std::strcmp(env, "scalar") == 0) expect = Isa::kScalar;
  if (env != nullptr && std::strcmp(env, "avx2") == 0) expect = std::min(Isa::kAvx2, detected_isa());
  EXPECT_EQ(active_isa(), expect) << "SHARDLM_ISA=" << (env ? env : "(unset)");
}

TEST(CpuFeatures, EnvironmentVariableSelectsIsa) {
  for (const char* env : {"scalar", "avx2", "avx512", "bogus"}) {
    EXPECT_EQ(run_self_with("SHARDLM_ISA", env, "CpuFeatures.ActiveIsaFollowsEnvironment"), 0) << "SHARDLM_ISA=" << env;
  }
}

}  // namespace
}  // namespace shardlm
