// Run-time CPU feature detection and the SIMD level the kernels dispatch to. The level can be
// lowered (never raised above what the CPU has) with SHARDLM_ISA=scalar|avx2|avx512 or
// set_isa_override(), so tests exercise every compiled path on one machine.
#pragma once

namespace shardlm {

enum class Isa { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

const char* isa_name(Isa isa);
Isa detected_isa();   // best level the CPU (and OS) supports
Isa active_isa();     // level in use: min(detected, override)
void set_isa_override(Isa isa);  // for tests; clamps to detected_isa()
void clear_isa_override();
// AVX-512 VNNI (vpdpbusd), used by the quantised kernels at the AVX-512 level.
bool has_avx512_vnni();
// AVX-VNNI (VEX vpdpbusd on ymm), used by the quantised kernels at the AVX2 level.
bool has_avx_vnni();

// AMX with bf16 tiles (Intel Xeon from Sapphire Rapids on): the CPU reports AMX-TILE and AMX-BF16
// (and AVX512-BF16, which the kernel converts activations with; every such CPU has it), the OS saves the tile state (XCR0 bits 17-18) and lets this process use it (arch_prctl
// ARCH_REQ_XCOMP_PERM for XTILEDATA, requested on the first call). The kAmx matmul backend.
bool has_amx_bf16();
// AMX with int8 tiles (tdpbssd), used by the quantised kernels at the AVX-512 level for batches
// (kTileRowsMin in qgemm.h): the CPU reports AMX-TILE and AMX-INT8 besides AVX-512 VNNI, and the OS
// and this process may use the tiles (as above).
bool has_amx_int8();

// How the AVX-512 GEMV tiles read and prefetch their weight stream (the kernels say what was
// measured): kZen, one stream per thread prefetched far ahead (AMD, and any CPU that is not Intel);
// kIntel, two streams per thread half a page apart, each prefetched close ahead (Intel); kStreams,
// three or four streams per thread prefetched close ahead (VMs whose hardware prefetchers serve
// several streams well and far software prefetches badly). Results never depend on it;
// set_prefetch_tuning() sets it (gemv_tuning.h measures which is fastest on the machine; tests run
// every one).
enum class PrefetchTuning { kZen = 0, kIntel = 1, kStreams = 2 };
const char* prefetch_tuning_name(PrefetchTuning tuning);  // "zen", "intel", "streams"
// The override if set, else SHARDLM_PREFETCH (zen, intel or streams) if set, else the vendor's.
PrefetchTuning prefetch_tuning();
PrefetchTuning vendor_prefetch_tuning();  // kIntel on Intel CPUs, else kZen
// Whether SHARDLM_PREFETCH names a tuning (which then is not measured).
bool prefetch_tuning_from_env();
void set_prefetch_tuning(PrefetchTuning tuning);
void clear_prefetch_tuning();

}  // namespace shardlm
