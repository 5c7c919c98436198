// Length-prefixed framing of protobuf messages on a byte stream (the TCP client protocol): a frame is a
// 4-byte big-endian payload length followed by the payload, one serialised message. FrameDecoder
// takes bytes as they arrive (any split) and returns whole payloads, refusing a frame longer than its
// limit as soon as the length prefix is read, before any of the payload is buffered.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace google::protobuf {
class MessageLite;
}

namespace shardlm {

inline constexpr size_t kFrameHeaderBytes = 4;
inline constexpr uint32_t kDefaultMaxFrameBytes = 16u << 20;

void write_frame_length(uint32_t length, char* out);  // 4 bytes, big-endian
uint32_t read_frame_length(const char* in);

// Appends one frame holding `message` to `out`. Throws Error when the serialised message is longer
// than max_frame_bytes (the peer would refuse it).
void append_frame(std::string& out, const google::protobuf::MessageLite& message,
                  uint32_t max_frame_bytes = kDefaultMaxFrameBytes);
std::string encode_frame(const google::protobuf::MessageLite& message,
                         uint32_t max_frame_bytes = kDefaultMaxFrameBytes);

// Parses a payload; false when the bytes are not a valid serialisation of the message type.
bool parse_frame_payload(std::string_view payload, google::protobuf::MessageLite& message);

class FrameDecoder {
 public:
  enum class Status {
    kNeedMore,  // no complete frame buffered yet
    kFrame,     // `payload` holds the next frame's payload
    kTooLarge,  // the next frame declares more than max_frame_bytes; the stream cannot continue
  };

  explicit FrameDecoder(uint32_t max_frame_bytes = kDefaultMaxFrameBytes);

  void feed(std::string_view bytes);
  // Extracts the next complete frame. After kTooLarge every call returns kTooLarge again.
  Status next(std::string& payload);

  uint32_t max_frame_bytes() const { return max_frame_bytes_; }
  // A new limit for the frames not yet read (e.g. a larger one once a peer is authenticated).
  void set_max_frame_bytes(uint32_t max_frame_bytes) { max_frame_bytes_ = max_frame_bytes; }
  uint32_t declared_length() const { return declared_; }  // length prefix of the refused frame
  size_t buffered() const { return buffer_.size() - offset_; }
  size_t buffer_capacity() const { return buffer_.capacity(); }

 private:
  uint32_t max_frame_bytes_;
  std::string buffer_;
  size_t offset_ = 0;  // start of the unread bytes in buffer_
  uint32_t declared_ = 0;
  bool too_large_ = false;
};

}  // namespace shardlm
