// Times the GEMV prefetch tunings on a synthetic matrix and sets the fastest (see gemv_tuning.h).
#include "kernels/gemv_tuning.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <mutex>

#include <spdlog/spdlog.h>

#include "common/aligned_buffer.h"
#include "kernels/gemm_own.h"
#include "kernels/qgemm.h"

namespace shardlm {
namespace {

// The columns of the timed matrix: the 31B's hidden size, a typical decode GEMV's k.
constexpr int64_t kColumns = 5376;

int64_t default_bytes() {
  const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
  const int64_t four = l3 > 0 ? 4 * static_cast<int64_t>(l3) : 0;
  return std::clamp<int64_t>(four, int64_t{64} << 20, int64_t{256} << 20);
}

double bytes_per_weight(WeightFormat format) {
  switch (format) {
    case WeightFormat::kF32: return 4.0;
    case WeightFormat::kBF16: return 2.0;
    case WeightFormat::kInt8: return 1.0;
    case WeightFormat::kQ4: return 0.5625;
  }
  return 2.0;
}

// Whether the kernels of `format` run at the AVX-512 level here, where the tuning applies.
bool tuning_applies(WeightFormat format) {
  const Isa isa = active_isa();
  if (is_quantized(format)) return qgemm::kernel_isa(isa) == Isa::kAvx512;
  return isa == Isa::kAvx512;
}

// One decode GEMV y = W x of the format over n rows, with weights whose values do not matter to the
// timing (small finite scales, so nothing overflows).
class TimedGemv {
 public:
  TimedGemv(WeightFormat format, int64_t n) : format_(format), x_(kColumns, 1.0f), y_(static_cast<size_t>(n)) {
    if (is_quantized(format)) {
      q_.format = format == WeightFormat::kInt8 ? qgemm::Format::kInt8 : qgemm::Format::kQ4;
      q_.n = n;
      q_.k = kColumns;
      q_.data = AlignedBuffer<uint8_t>(static_cast<size_t>(q_.panels() * q_.panel_stride()));
      std::memset(q_.data.data(), 0x11, q_.data.size());
      bytes_ = static_cast<double>(q_.bytes());
    } else {
      own_.n = n;
      own_.k = kColumns;
      own_.bf16 = format == WeightFormat::kBF16;
      const size_t elements = static_cast<size_t>(own_.panels() * own_.panel_stride());
      if (own_.bf16) {
        own_.b16 = AlignedBuffer<uint16_t>(elements);
        std::fill(own_.b16.begin(), own_.b16.end(), uint16_t{0x3c00});  // bf16 0.0078125
        bytes_ = static_cast<double>(elements) * 2.0;
      } else {
        own_.f32 = AlignedBuffer<float>(elements);
        std::fill(own_.f32.begin(), own_.f32.end(), 0.0078125f);
        bytes_ = static_cast<double>(elements) * 4.0;
      }
    }
  }

  // Seconds of one call.
  double run() {
    const auto t0 = std::chrono::steady_clock::now();
    if (is_quantized(format_)) {
      qgemm::gemm(q_, x_.data(), 1, y_.data(), false, Isa::kAvx512);
    } else {
      gemm::gemm(own_, x_.data(), 1, y_.data(), false, Isa::kAvx512);
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  double bytes() const { return bytes_; }

 private:
  WeightFormat format_;
  qgemm::PackedWeights q_;
  gemm::PackedWeights own_;
  std::vector<float> x_, y_;
  double bytes_ = 0.0;
};

}  // namespace

std::vector<PrefetchTuning> gemv_tuning_candidates() { return {vendor_prefetch_tuning(), PrefetchTuning::kStreams}; }

GemvTuningChoice calibrate_gemv_tuning(WeightFormat format, int64_t bytes, int rounds) {
  GemvTuningChoice choice{prefetch_tuning(), false, {}};
  if (prefetch_tuning_from_env() || !tuning_applies(format)) return choice;
  if (bytes <= 0) bytes = default_bytes();
  const double per_row = bytes_per_weight(format) * static_cast<double>(kColumns);
  const int64_t n = std::max<int64_t>(qgemm::kPanel, static_cast<int64_t>(static_cast<double>(bytes) / per_row) /
                                                         qgemm::kPanel * qgemm::kPanel);
  TimedGemv gemv(format, n);
  const std::vector<PrefetchTuning> candidates = gemv_tuning_candidates();
  std::vector<std::vector<double>> seconds(candidates.size());
  for (int round = -1; round < std::max(1, rounds); ++round) {  // round -1: untimed, warms each path
    for (size_t c = 0; c < candidates.size(); ++c) {
      set_prefetch_tuning(candidates[c]);
      const double t = gemv.run();
      if (round >= 0) seconds[c].push_back(t);
    }
  }
  size_t best = 0;
  for (size_t c = 0; c < candidates.size(); ++c) {
    std::sort(seconds[c].begin(), seconds[c].end());
    const double median = seconds[c][seconds[c].size() / 2];
    choice.rates.push_back({candidates[c], gemv.bytes() / median});
    if (choice.rates[c].bytes_per_second > choice.rates[best].bytes_per_second) best = c;
  }
  choice.tuning = candidates[best];
  choice.measured = true;
  set_prefetch_tuning(choice.tuning);
  return choice;
}

const GemvTuningChoice& calibrate_gemv_tuning_once(WeightFormat format) {
  static std::once_flag once;
  static GemvTuningChoice choice{PrefetchTuning::kZen, false, {}};
  std::call_once(once, [&] {
    choice = calibrate_gemv_tuning(format);
    if (!choice.measured) {
      spdlog::debug("GEMV weight stream: {} ({})", prefetch_tuning_name(choice.tuning),
                    prefetch_tuning_from_env() ? "SHARDLM_PREFETCH" : "not at the AVX-512 level");
      return;
    }
    std::string rates;
    for (const GemvTuningRate& r : choice.rates) {
      rates += fmt::format("{}{} {:.1f} GB/s", rates.empty() ? "" : ", ", prefetch_tuning_name(r.tuning),
                           r.bytes_per_second / 1e9);
    }
    spdlog::info("GEMV weight stream: {} (measured at start: {})", prefetch_tuning_name(choice.tuning), rates);
  });
  return choice;
}

}  // namespace shardlm
