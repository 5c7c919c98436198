// Unit tests of byte-size parsing and printing, and of the weight-format byte counts.
#include <gtest/gtest.h>

#include "common/error.h"
#include "partition/byte_size.h"
#include "partition/weight_encoding.h"

namespace shardlm {
namespace {

TEST(ByteSize, ParsesBinaryAndDecimalUnits) {
  EXPECT_EQ(parse_byte_size("24GiB"), 24LL << 30);
  EXPECT_EQ(parse_byte_size("512MiB"), 512LL << 20);
  EXPECT_EQ(parse_byte_size("30GB"), 30000000000LL);
  EXPECT_EQ(parse_byte_size("1.5 TiB"), 3LL << 39);
  EXPECT_EQ(parse_byte_size("4096"), 4096);
  EXPECT_EQ(parse_byte_size("64 kB"), 64000);
  EXPECT_EQ(parse_byte_size("2g"), 2LL << 30);
  EXPECT_EQ(parse_byte_size("7B"), 7);
}

TEST(ByteSize, RejectsNonsense) {
  for (const char* bad : {"", "GiB", "12 parsecs", "1.2.3GiB", "-5GiB", "1e30TB"}) {
    EXPECT_THROW(parse_byte_size(bad), Error) << bad;
  }
  try {
    parse_byte_size("12 parsecs");
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("parsecs"), std::string::npos);
  }
}

TEST(ByteSize, Formats) {
  EXPECT_EQ(format_bytes(0), "0 B");
  EXPECT_EQ(format_bytes(1023), "1023 B");
  EXPECT_EQ(format_bytes(1536), "1.5 KiB");
  EXPECT_EQ(format_bytes(24LL << 30), "24.0 GiB");
  EXPECT_EQ(format_bytes(static_cast<int64_t>(34.1 * (1LL << 30))), "34.1 GiB");
}

TEST(WeightEncoding, BytesPerWeight) {
  EXPECT_EQ(matrix_bytes(parse_weight_encoding("f32"), 64), 256);
  EXPECT_EQ(matrix_bytes(parse_weight_encoding("bf16"), 64), 128);
  EXPECT_EQ(matrix_bytes(parse_weight_encoding("int8"), 64), 64);  // 8 bits (per-row scales)
  EXPECT_EQ(matrix_bytes(parse_weight_encoding("q4"), 64), 36);    // 4.5 bits
  EXPECT_EQ(smaller_encodings(WeightEncoding::kBF16),
            (std::vector<WeightEncoding>{WeightEncoding::kInt8, WeightEncoding::kQ4}));
  EXPECT_TRUE(smaller_encodings(WeightEncoding::kQ4).empty());
  try {
    parse_weight_encoding("fp8");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'fp8'"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("q4"), std::string::npos);
  }
}

}  // namespace
}  // namespace shardlm
