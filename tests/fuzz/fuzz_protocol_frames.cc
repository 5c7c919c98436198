// Fuzz target: the TCP client protocol as the server reads it. The input's first three bytes choose
// the frame limit and how the byte stream is cut into reads; the rest is the stream. FrameDecoder
// takes the reads and returns whole frames (never one longer than its limit); each payload is parsed
// as a ClientMessage, a generate request converted to a TextRequest (RequestError for bad fields) and
// a chat request rendered with the chat template (Error for a malformed conversation), as the server
// and the text service do. Anything else (another exception, a crash, a sanitizer report, a decoder
// that loses or invents bytes) is a bug.
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>

#include <google/protobuf/stubs/logging.h>

#include "common/error.h"
#include "coordinator/request_error.h"
#include "coordinator/tcp/protocol.h"
#include "coordinator/tcp/text_conversion.h"
#include "model/chat_template.h"
#include "proto/client.pb.h"
#include "proto/frame.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

void handle_payload(const std::string& payload) {
  using namespace shardlm;
  // String fields are repaired with valid_utf8 before they are sent back; it must be idempotent.
  const std::string repaired = tcp::valid_utf8(payload);
  FUZZ_CHECK(fuzz::is_valid_utf8(repaired));
  FUZZ_CHECK(tcp::valid_utf8(repaired) == repaired);

  client::ClientMessage message;
  if (!parse_frame_payload(payload, message)) return;
  (void)tcp::message_kind(message);
  if (!message.has_generate()) return;
  TextRequest request;
  try {
    request = tcp::to_text_request(message.generate());
  } catch (const RequestError& e) {
    FUZZ_CHECK(e.code() == RequestErrorCode::kInvalidRequest);
    return;
  }
  if (!request.chat) return;
  FUZZ_CHECK(request.messages.is_array() && !request.messages.empty());
  ChatOptions options;
  options.enable_thinking = request.enable_thinking;
  options.tools = request.tools;
  try {
    (void)render_chat(request.messages, options);
  } catch (const Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shardlm;
  static const bool quiet = (google::protobuf::SetLogHandler(nullptr), true);
  (void)quiet;
  if (size < 3) return 0;
  const uint32_t max_frame = 1 + ((uint32_t{data[0]} << 8) | data[1]);
  const uint8_t cut = data[2];
  std::string_view stream = fuzz::as_text(data + 3, size - 3);

  FrameDecoder decoder(max_frame);
  size_t fed = 0;      // bytes given to the decoder
  size_t framed = 0;   // bytes returned as frames (headers included)
  bool too_large = false;
  size_t read = 0;
  while (!stream.empty()) {
    // Reads of 1..16 bytes following the bits of `cut`, or the whole rest when cut is 0.
    const size_t n = cut == 0 ? stream.size() : std::min(stream.size(), size_t{1} + ((cut >> (read++ % 5)) & 15));
    decoder.feed(stream.substr(0, n));
    fed += n;
    stream.remove_prefix(n);
    std::string payload;
    for (;;) {
      const FrameDecoder::Status s = decoder.next(payload);
      if (s == FrameDecoder::Status::kNeedMore) break;
      if (s == FrameDecoder::Status::kTooLarge) {
        FUZZ_CHECK(decoder.declared_length() > max_frame);
        FUZZ_CHECK(decoder.next(payload) == FrameDecoder::Status::kTooLarge);
        too_large = true;
        break;
      }
      FUZZ_CHECK(payload.size() <= max_frame);
      framed += kFrameHeaderBytes + payload.size();
      handle_payload(payload);
    }
    if (too_large) break;
    FUZZ_CHECK(framed + decoder.buffered() == fed);
  }
  return 0;
}
