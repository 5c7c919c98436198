// Framing of the client protocol: length prefix byte order, frames split anywhere, several frames in
// one read, the size limit (refused at the header, before the payload arrives) and garbage payloads.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "common/error.h"
#include "proto/client.pb.h"
#include "proto/frame.h"

namespace shardlm {
namespace {

client::ClientMessage hello_message(const std::string& key) {
  client::ClientMessage m;
  auto* hello = m.mutable_hello();
  hello->set_protocol_major(client::PROTOCOL_MAJOR_VERSION);
  hello->set_protocol_minor(client::PROTOCOL_MINOR_VERSION);
  hello->set_api_key(key);
  return m;
}

client::ClientMessage generate_message(uint64_t id, const std::string& prompt) {
  client::ClientMessage m;
  m.set_request_id(id);
  m.mutable_generate()->set_prompt(prompt);
  m.mutable_generate()->set_max_tokens(7);
  return m;
}

TEST(Frame, LengthIsBigEndian) {
  char b[4];
  write_frame_length(0x01020304u, b);
  EXPECT_EQ(b[0], 1);
  EXPECT_EQ(b[1], 2);
  EXPECT_EQ(b[2], 3);
  EXPECT_EQ(b[3], 4);
  EXPECT_EQ(read_frame_length(b), 0x01020304u);
  write_frame_length(0xfffffffeu, b);
  EXPECT_EQ(read_frame_length(b), 0xfffffffeu);
}

TEST(Frame, EncodeHasHeaderThenPayload) {
  const auto m = generate_message(42, "hello");
  const std::string frame = encode_frame(m);
  ASSERT_EQ(frame.size(), kFrameHeaderBytes + m.ByteSizeLong());
  EXPECT_EQ(read_frame_length(frame.data()), m.ByteSizeLong());
  client::ClientMessage back;
  ASSERT_TRUE(parse_frame_payload(std::string_view(frame).substr(kFrameHeaderBytes), back));
  EXPECT_EQ(back.request_id(), 42u);
  EXPECT_EQ(back.generate().prompt(), "hello");
  EXPECT_EQ(back.generate().max_tokens(), 7);
}

TEST(Frame, DecoderTakesBytesOneAtATime) {
  std::string stream = encode_frame(hello_message("k1")) + encode_frame(generate_message(1, "a"));
  FrameDecoder decoder;
  std::string payload;
  std::vector<client::ClientMessage> got;
  for (char c : stream) {
    EXPECT_NE(decoder.next(payload), FrameDecoder::Status::kFrame);
    decoder.feed(std::string_view(&c, 1));
    while (decoder.next(payload) == FrameDecoder::Status::kFrame) {
      got.emplace_back();
      ASSERT_TRUE(parse_frame_payload(payload, got.back()));
    }
  }
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].hello().api_key(), "k1");
  EXPECT_EQ(got[1].generate().prompt(), "a");
  EXPECT_EQ(decoder.buffered(), 0u);
  EXPECT_EQ(decoder.next(payload), FrameDecoder::Status::kNeedMore);
}

TEST(Frame, DecoderSplitsManyFramesFromOneRead) {
  std::string stream;
  for (int i = 1; i <= 100; ++i) stream += encode_frame(generate_message(i, std::string(i, 'x')));
  // A partial frame at the end stays buffered.
  const std::string last = encode_frame(generate_message(101, "tail"));
  stream += last.substr(0, last.size() - 3);
  FrameDecoder decoder;
  decoder.feed(stream);
  std::string payload;
  for (int i = 1; i <= 100; ++i) {
    ASSERT_EQ(decoder.next(payload), FrameDecoder::Status::kFrame) << i;
    client::ClientMessage m;
    ASSERT_TRUE(parse_frame_payload(payload, m));
    EXPECT_EQ(m.request_id(), static_cast<uint64_t>(i));
    EXPECT_EQ(m.generate().prompt().size(), static_cast<size_t>(i));
  }
  EXPECT_EQ(decoder.next(payload), FrameDecoder::Status::kNeedMore);
  EXPECT_EQ(decoder.buffered(), last.size() - 3);
  decoder.feed(last.substr(last.size() - 3));
  ASSERT_EQ(decoder.next(payload), FrameDecoder::Status::kFrame);
  client::ClientMessage m;
  ASSERT_TRUE(parse_frame_payload(payload, m));
  EXPECT_EQ(m.generate().prompt(), "tail");
}

TEST(Frame, RandomSplitsGiveTheSameFrames) {
  std::string stream;
  for (int i = 1; i <= 50; ++i) stream += encode_frame(generate_message(i, std::string(i * 7, 'a' + i % 26)));
  std::mt19937 rng(3);
  for (int trial = 0; trial < 20; ++trial) {
    FrameDecoder decoder;
    std::string payload;
    size_t pos = 0;
    uint64_t expect = 1;
    while (pos < stream.size()) {
      const size_t n = std::min<size_t>(stream.size() - pos, 1 + rng() % 300);
      decoder.feed(std::string_view(stream).substr(pos, n));
      pos += n;
      while (decoder.next(payload) == FrameDecoder::Status::kFrame) {
        client::ClientMessage m;
        ASSERT_TRUE(parse_frame_payload(payload, m));
        ASSERT_EQ(m.request_id(), expect++);
      }
    }
    EXPECT_EQ(expect, 51u);
  }
}

TEST(Frame, EmptyPayloadIsAnEmptyMessage) {
  FrameDecoder decoder;
  decoder.feed(std::string(4, '\0'));
  std::string payload = "junk";
  ASSERT_EQ(decoder.next(payload), FrameDecoder::Status::kFrame);
  EXPECT_TRUE(payload.empty());
  client::ClientMessage m;
  ASSERT_TRUE(parse_frame_payload(payload, m));
  EXPECT_EQ(m.body_case(), client::ClientMessage::BODY_NOT_SET);
}

TEST(Frame, OversizeFrameIsRefusedAtTheHeader) {
  FrameDecoder decoder(1000);
  char header[4];
  write_frame_length(1001, header);
  decoder.feed(std::string_view(header, 3));
  std::string payload;
  EXPECT_EQ(decoder.next(payload), FrameDecoder::Status::kNeedMore);
  decoder.feed(std::string_view(header + 3, 1));
  EXPECT_EQ(decoder.next(payload), FrameDecoder::Status::kTooLarge);
  EXPECT_EQ(decoder.declared_length(), 1001u);
  // The stream cannot be resynchronised: later bytes are dropped and the state stays.
  decoder.feed(encode_frame(generate_message(1, "x")));
  EXPECT_EQ(decoder.next(payload), FrameDecoder::Status::kTooLarge);
  EXPECT_EQ(decoder.buffered(), 0u);
}

TEST(Frame, FrameAtTheLimitIsAccepted) {
  FrameDecoder decoder(1000);
  char header[4];
  write_frame_length(1000, header);
  decoder.feed(std::string_view(header, 4));
  decoder.feed(std::string(999, 'z'));
  std::string payload;
  EXPECT_EQ(decoder.next(payload), FrameDecoder::Status::kNeedMore);
  decoder.feed("z");
  ASSERT_EQ(decoder.next(payload), FrameDecoder::Status::kFrame);
  EXPECT_EQ(payload, std::string(1000, 'z'));
}

// A buffer that grew for a large frame is given back once the frame is read (an idle connection
// keeps no megabytes), and the limit can be raised for the frames to come.
TEST(Frame, ALargeFramesBufferIsReleasedAndTheLimitCanBeRaised) {
  FrameDecoder decoder(1000);
  char header[4];
  write_frame_length(4 << 20, header);
  decoder.feed(std::string_view(header, 4));
  decoder.set_max_frame_bytes(8 << 20);  // (the header is read at next())
  decoder.feed(std::string(4 << 20, 'x'));
  std::string payload;
  ASSERT_EQ(decoder.next(payload), FrameDecoder::Status::kFrame);
  EXPECT_EQ(payload.size(), 4u << 20);
  EXPECT_EQ(decoder.buffered(), 0u);
  EXPECT_LE(decoder.buffer_capacity(), 256u * 1024);
}

TEST(Frame, HugeDeclaredLengthIsRefused) {
  FrameDecoder decoder;
  decoder.feed("\xff\xff\xff\xff");
  std::string payload;
  EXPECT_EQ(decoder.next(payload), FrameDecoder::Status::kTooLarge);
  EXPECT_EQ(decoder.declared_length(), 0xffffffffu);
}

TEST(Frame, EncodeRefusesMessagesOverTheLimit) {
  const auto m = generate_message(1, std::string(200, 'p'));
  EXPECT_THROW(encode_frame(m, 100), Error);
  std::string out = "keep";
  EXPECT_THROW(append_frame(out, m, 100), Error);
  EXPECT_EQ(out, "keep");
  EXPECT_NO_THROW(encode_frame(m, static_cast<uint32_t>(m.ByteSizeLong())));
}

TEST(Frame, GarbagePayloadsDoNotParse) {
  client::ClientMessage m;
  // Field 1 as a varint that never ends.
  EXPECT_FALSE(parse_frame_payload(std::string(12, '\xff'), m));
  // Length-delimited field 3 (generate) claiming more bytes than there are.
  EXPECT_FALSE(parse_frame_payload(std::string("\x1a\x7f\x01", 3), m));
  // Wire type 7 does not exist.
  EXPECT_FALSE(parse_frame_payload(std::string("\x0f", 1), m));
  // Field number 0 is invalid.
  EXPECT_FALSE(parse_frame_payload(std::string("\x00\x01", 2), m));
  // Invalid UTF-8 in a string field.
  client::ClientMessage g = generate_message(5, "ok");
  std::string bytes = g.SerializeAsString();
  const size_t at = bytes.find("ok");
  ASSERT_NE(at, std::string::npos);
  bytes[at] = '\xc3';
  bytes[at + 1] = '\x28';
  EXPECT_FALSE(parse_frame_payload(bytes, m));
}

TEST(Frame, RandomBytesNeverCrashTheDecoder) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 2000; ++trial) {
    std::string bytes(rng() % 64, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    FrameDecoder decoder(256);
    decoder.feed(bytes);
    std::string payload;
    FrameDecoder::Status s;
    int frames = 0;
    while ((s = decoder.next(payload)) == FrameDecoder::Status::kFrame) {
      client::ClientMessage m;
      (void)parse_frame_payload(payload, m);
      ASSERT_LE(payload.size(), 256u);
      ++frames;
    }
    ASSERT_LE(frames, 16);
  }
}

}  // namespace
}  // namespace shardlm
