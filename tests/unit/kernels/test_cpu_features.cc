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

TEST(CpuFeatures, PrefetchTuningFollowsVendorAndOverride) {
  __builtin_cpu_init();
  const PrefetchTuning by_vendor = __builtin_cpu_is("intel") ? PrefetchTuning::kIntel : PrefetchTuning::kZen;
  EXPECT_EQ(prefetch_tuning(), by_vendor);
  set_prefetch_tuning(PrefetchTuning::kIntel);
  EXPECT_EQ(prefetch_tuning(), PrefetchTuning::kIntel);
  set_prefetch_tuning(PrefetchTuning::kZen);
  EXPECT_EQ(prefetch_tuning(), PrefetchTuning::kZen);
  clear_prefetch_tuning();
  EXPECT_EQ(prefetch_tuning(), by_vendor);
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
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  for (const char* env : {"scalar", "avx2", "avx512", "bogus"}) {
    const std::string cmd = std::string("SHARDLM_ISA=") + env + " " + self +
                            " --gtest_filter=CpuFeatures.ActiveIsaFollowsEnvironment >/dev/null 2>&1";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << "SHARDLM_ISA=" << env;
  }
}

}  // namespace
}  // namespace shardlm
