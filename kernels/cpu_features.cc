// Run-time ISA detection (cpuid via __builtin_cpu_supports, which also checks OS register-state
// support) and the process-wide override used by SHARDLM_ISA and the tests.
#include "kernels/cpu_features.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

namespace shardlm {
namespace {

constexpr int kNoOverride = -1;

Isa detect() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma")) {
    return Isa::kAvx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2;
  return Isa::kScalar;
}

int override_from_env() {
  const char* value = std::getenv("SHARDLM_ISA");
  if (value == nullptr || *value == '\0') return kNoOverride;
  if (std::strcmp(value, "scalar") == 0) return static_cast<int>(Isa::kScalar);
  if (std::strcmp(value, "avx2") == 0) return static_cast<int>(Isa::kAvx2);
  if (std::strcmp(value, "avx512") == 0) return static_cast<int>(Isa::kAvx512);
  spdlog::warn("SHARDLM_ISA='{}' is not one of scalar, avx2, avx512; ignored", value);
  return kNoOverride;
}

int env_override() {
  static const int value = override_from_env();
  return value;
}

// Set by set_isa_override(); takes precedence over SHARDLM_ISA until cleared.
std::atomic<int>& override_slot() {
  static std::atomic<int> slot{kNoOverride};
  return slot;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
  }
  return "unknown";
}

Isa detected_isa() {
  static const Isa detected = detect();
  return detected;
}

Isa active_isa() {
  const Isa best = detected_isa();
  int forced = override_slot().load(std::memory_order_relaxed);
  if (forced == kNoOverride) forced = env_override();
  if (forced == kNoOverride || forced >= static_cast<int>(best)) return best;
  return static_cast<Isa>(forced);
}

void set_isa_override(Isa isa) {
  const int clamped = std::min(static_cast<int>(isa), static_cast<int>(detected_isa()));
  override_slot().store(clamped, std::memory_order_relaxed);
}

bool has_avx512_vnni() {
  static const bool vnni = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vnni") != 0;
  }();
  return vnni;
}

bool has_avx_vnni() {
  static const bool vnni = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avxvnni") != 0;
  }();
  return vnni;
}

namespace {

// The tile unit with the CPUID feature bits `features` of leaf 7 (EDX) besides AMX-TILE, its state
// saved by the OS (XCR0 bits 17-18) and this process allowed to use it (arch_prctl
// ARCH_REQ_XCOMP_PERM for XTILEDATA, requested here).
bool amx_usable(unsigned features) {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) == 0) return false;
  constexpr unsigned kAmxTile = 1u << 24;
  if ((edx & (features | kAmxTile)) != (features | kAmxTile)) return false;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0 || (ecx & (1u << 27)) == 0) return false;  // OSXSAVE
  unsigned xcr0_lo = 0, xcr0_hi = 0;
  __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  constexpr unsigned kTileState = (1u << 17) | (1u << 18);  // XTILECFG, XTILEDATA
  if ((xcr0_lo & kTileState) != kTileState) return false;
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}

}  // namespace

bool has_amx_bf16() {
  static const bool amx = [] {
    __builtin_cpu_init();
    if (detected_isa() != Isa::kAvx512 || !__builtin_cpu_supports("avx512bf16")) return false;
    constexpr unsigned kAmxBf16 = 1u << 22;
    return amx_usable(kAmxBf16);
  }();
  return amx;
}

bool has_amx_int8() {
  static const bool amx = [] {
    if (detected_isa() != Isa::kAvx512 || !has_avx512_vnni()) return false;
    constexpr unsigned kAmxInt8 = 1u << 25;
    return amx_usable(kAmxInt8);
  }();
  return amx;
}

void clear_isa_override() { override_slot().store(kNoOverride, std::memory_order_relaxed); }

namespace {
std::atomic<int>& tuning_slot() {
  static std::atomic<int> slot{kNoOverride};
  return slot;
}
}  // namespace

namespace {
int tuning_from_env() {
  const char* value = std::getenv("SHARDLM_PREFETCH");
  if (value == nullptr || *value == '\0') return kNoOverride;
  for (PrefetchTuning t : {PrefetchTuning::kZen, PrefetchTuning::kIntel, PrefetchTuning::kStreams}) {
    if (std::strcmp(value, prefetch_tuning_name(t)) == 0) return static_cast<int>(t);
  }
  spdlog::warn("SHARDLM_PREFETCH='{}' is not one of zen, intel, streams; ignored", value);
  return kNoOverride;
}

int env_tuning() {
  static const int value = tuning_from_env();
  return value;
}
}  // namespace

const char* prefetch_tuning_name(PrefetchTuning tuning) {
  switch (tuning) {
    case PrefetchTuning::kZen: return "zen";
    case PrefetchTuning::kIntel: return "intel";
    case PrefetchTuning::kStreams: return "streams";
  }
  return "unknown";
}

bool prefetch_tuning_from_env() { return env_tuning() != kNoOverride; }

PrefetchTuning vendor_prefetch_tuning() {
  __builtin_cpu_init();
  return __builtin_cpu_is("intel") ? PrefetchTuning::kIntel : PrefetchTuning::kZen;
}

PrefetchTuning prefetch_tuning() {
  static const PrefetchTuning detected = [] {
    return env_tuning() != kNoOverride ? static_cast<PrefetchTuning>(env_tuning()) : vendor_prefetch_tuning();
  }();
  const int forced = tuning_slot().load(std::memory_order_relaxed);
  return forced == kNoOverride ? detected : static_cast<PrefetchTuning>(forced);
}

void set_prefetch_tuning(PrefetchTuning tuning) { tuning_slot().store(static_cast<int>(tuning), std::memory_order_relaxed); }

void clear_prefetch_tuning() { tuning_slot().store(kNoOverride, std::memory_order_relaxed); }

}  // namespace shardlm
