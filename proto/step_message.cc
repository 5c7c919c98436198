#include "proto/step_message.h"

#include <cstring>

#include "common/error.h"

namespace shardlm {
namespace {

void put(std::vector<uint8_t>& out, const void* data, size_t bytes) {
  const auto* p = static_cast<const uint8_t*>(data);
  out.insert(out.end(), p, p + bytes);
}

template <typename T>
void put_vector(std::vector<uint8_t>& out, const std::vector<T>& v) {
  const uint64_t n = v.size();
  put(out, &n, sizeof n);
  put(out, v.data(), n * sizeof(T));
}

class Reader {
 public:
  explicit Reader(const std::vector<uint8_t>& b) : b_(b) {}
  void get(void* data, size_t bytes) {
    if (bytes > b_.size() - pos_) fail("step message truncated at byte {} (size {})", pos_, b_.size());
    std::memcpy(data, b_.data() + pos_, bytes);
    pos_ += bytes;
  }
  template <typename T>
  std::vector<T> vector() {
    uint64_t n = 0;
    get(&n, sizeof n);
    if (n > (b_.size() - pos_) / sizeof(T)) fail("step message: vector of {} elements exceeds the message", n);
    std::vector<T> v(n);
    get(v.data(), n * sizeof(T));
    return v;
  }
  bool done() const { return pos_ == b_.size(); }

 private:
  const std::vector<uint8_t>& b_;
  size_t pos_ = 0;
};

}  // namespace

std::vector<uint8_t> encode_step_batch(const StepBatch& batch) {
  std::vector<uint8_t> out;
  put_vector(out, batch.tokens);
  put_vector(out, batch.positions);
  put_vector(out, batch.segments);
  put_vector(out, batch.logit_rows);
  return out;
}

StepBatch decode_step_batch(const std::vector<uint8_t>& bytes) {
  Reader r(bytes);
  StepBatch b;
  b.tokens = r.vector<int32_t>();
  b.positions = r.vector<int32_t>();
  b.segments = r.vector<SequenceSegment>();
  b.logit_rows = r.vector<int32_t>();
  if (!r.done()) fail("step message has trailing bytes");
  if (b.positions.size() != b.tokens.size()) fail("step message: {} positions for {} tokens", b.positions.size(), b.tokens.size());
  int64_t covered = 0;
  for (const SequenceSegment& s : b.segments) {
    if (s.rows < 0 || s.first_row != covered) fail("step message: segment rows are not contiguous");
    covered += s.rows;
  }
  if (covered != static_cast<int64_t>(b.tokens.size())) fail("step message: segments cover {} of {} rows", covered, b.tokens.size());
  for (int32_t r0 : b.logit_rows) {
    if (r0 < 0 || r0 >= b.size()) fail("step message: logit row {} outside the batch", r0);
  }
  return b;
}

void check_step_header(const StepHeader& h) {
  if (h.version != kStepProtocolVersion) {
    fail("step protocol version {} received, this worker speaks {}", h.version, kStepProtocolVersion);
  }
  if (h.command < 1 || h.command > 5) fail("unknown step command {}", h.command);
  if (h.payload_bytes < 0 || h.payload_bytes > (int64_t{1} << 32)) fail("bad step payload size {}", h.payload_bytes);
}

}  // namespace shardlm
