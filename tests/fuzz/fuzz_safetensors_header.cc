// libFuzzer target: SafetensorsFile::parse_header on arbitrary bytes (the whole input is the file)
// must either return tensors that lie inside the data section, are consistent with their dtype and
// shape and do not overlap, or throw shardlm::Error. Anything else (another exception, a crash, an
// out-of-bounds read caught by ASan, UB caught by UBSan) is a bug.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <utility>
#include <vector>

#include "common/error.h"
#include "model/safetensors.h"

namespace {

uint64_t header_length(const uint8_t* data) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | data[i];
  return v;
}

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shardlm;
  std::map<std::string, TensorInfo> tensors;
  try {
    tensors = SafetensorsFile::parse_header(data, size, size, "fuzz.safetensors");
  } catch (const Error&) {
    return 0;
  }
  check(size >= 8);
  const uint64_t data_start = 8 + header_length(data);
  check(data_start <= size);
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  volatile uint8_t sink = 0;
  for (const auto& [name, t] : tensors) {
    check(!name.empty() && name == t.name);
    check(t.begin >= data_start && t.begin <= t.end && t.end <= size);
    const uint64_t bits = t.unsupported_dtype.empty() ? 8 * dtype_size(t.dtype) : unsupported_dtype_bits(t.unsupported_dtype);
    check(bits > 0 && t.nbytes() == (static_cast<uint64_t>(t.numel()) * bits + 7) / 8);
    for (int64_t d : t.shape) check(d >= 0);
    for (uint64_t i = t.begin; i < t.end; ++i) sink = sink ^ data[i];  // ASan checks these reads
    if (t.end > t.begin) spans.emplace_back(t.begin, t.end);
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i) check(spans[i - 1].second <= spans[i].first);
  return 0;
}
