#include "proto/frame.h"

#include <google/protobuf/message_lite.h>

#include "common/error.h"

namespace shardlm {

void write_frame_length(uint32_t length, char* out) {
  out[0] = static_cast<char>((length >> 24) & 0xff);
  out[1] = static_cast<char>((length >> 16) & 0xff);
  out[2] = static_cast<char>((length >> 8) & 0xff);
  out[3] = static_cast<char>(length & 0xff);
}

uint32_t read_frame_length(const char* in) {
  const auto* b = reinterpret_cast<const unsigned char*>(in);
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | uint32_t{b[3]};
}

void append_frame(std::string& out, const google::protobuf::MessageLite& message, uint32_t max_frame_bytes) {
  const size_t size = message.ByteSizeLong();
  if (size > max_frame_bytes) {
    fail("{} message of {} bytes exceeds the frame limit of {} bytes", message.GetTypeName(), size, max_frame_bytes);
  }
  const size_t start = out.size();
  out.resize(start + kFrameHeaderBytes + size);
  write_frame_length(static_cast<uint32_t>(size), out.data() + start);
  if (!message.SerializeToArray(out.data() + start + kFrameHeaderBytes, static_cast<int>(size))) {
    out.resize(start);
    fail("cannot serialise a {} message", message.GetTypeName());
  }
}

std::string encode_frame(const google::protobuf::MessageLite& message, uint32_t max_frame_bytes) {
  std::string out;
  append_frame(out, message, max_frame_bytes);
  return out;
}

bool parse_frame_payload(std::string_view payload, google::protobuf::MessageLite& message) {
  if (payload.size() > static_cast<size_t>(INT32_MAX)) return false;
  return message.ParseFromArray(payload.data(), static_cast<int>(payload.size()));
}

namespace {
constexpr size_t kKeptBufferBytes = 256 * 1024;  // what an emptied buffer may keep of its capacity
}  // namespace

FrameDecoder::FrameDecoder(uint32_t max_frame_bytes) : max_frame_bytes_(max_frame_bytes) {}

void FrameDecoder::feed(std::string_view bytes) {
  if (too_large_) return;  // nothing after a refused frame can be read
  // Drop consumed bytes before growing, so the buffer stays about one frame long.
  if (offset_ > 0 && (offset_ == buffer_.size() || offset_ >= buffer_.size() / 2)) {
    buffer_.erase(0, offset_);
    offset_ = 0;
  }
  buffer_.append(bytes.data(), bytes.size());
}

FrameDecoder::Status FrameDecoder::next(std::string& payload) {
  if (too_large_) return Status::kTooLarge;
  const size_t available = buffer_.size() - offset_;
  if (available < kFrameHeaderBytes) return Status::kNeedMore;
  const uint32_t length = read_frame_length(buffer_.data() + offset_);
  if (length > max_frame_bytes_) {
    too_large_ = true;
    declared_ = length;
    buffer_.clear();
    buffer_.shrink_to_fit();
    offset_ = 0;
    return Status::kTooLarge;
  }
  if (available - kFrameHeaderBytes < length) return Status::kNeedMore;
  payload.assign(buffer_.data() + offset_ + kFrameHeaderBytes, length);
  offset_ += kFrameHeaderBytes + length;
  if (offset_ == buffer_.size()) {
    // Empty: a buffer that grew for a large frame is given back (an idle connection keeps none).
    if (buffer_.capacity() > kKeptBufferBytes) {
      std::string().swap(buffer_);
    } else {
      buffer_.clear();
    }
    offset_ = 0;
  }
  return Status::kFrame;
}

}  // namespace shardlm
