// JSON from outside input: nesting beyond the limit and integers outside the 64-bit range are parse
// errors (the latter were rounded to doubles), while everything else parses as nlohmann::json does.
#include <gtest/gtest.h>

#include <string>

#include "common/json_limits.h"

namespace shardlm {
namespace {

std::string error_of(const std::string& text) {
  try {
    parse_json_limited(text);
  } catch (const nlohmann::json::parse_error& e) {
    return e.what();
  }
  ADD_FAILURE() << "accepted: " << text;
  return {};
}

TEST(JsonLimits, DeepNestingIsRefused) {
  EXPECT_NE(error_of(std::string(100, '[') + std::string(100, ']')).find("nested deeper than 64"), std::string::npos);
  EXPECT_NO_THROW(parse_json_limited(std::string(64, '[') + std::string(64, ']')));
}

TEST(JsonLimits, IntegersBeyondSixtyFourBitsAreRefused) {
  EXPECT_NE(error_of(R"({"a": 123456789012345678901234567890})").find("parse error at byte 7: the integer 123456789012345678901234567890 does not fit"),
            std::string::npos);
  EXPECT_NE(error_of("[-9223372036854775809]").find("-9223372036854775809"), std::string::npos);
  EXPECT_NE(error_of("18446744073709551616").find("does not fit in 64 bits"), std::string::npos);
  // The edges of the range, floats of any size, and digits inside strings are fine.
  EXPECT_EQ(parse_json_limited("[-9223372036854775808]")[0].get<int64_t>(), INT64_MIN);
  EXPECT_EQ(parse_json_limited("18446744073709551615").get<uint64_t>(), UINT64_MAX);
  EXPECT_TRUE(parse_json_limited("[123456789012345678901234567890.0, 1.5e300]")[0].is_number_float());
  EXPECT_EQ(parse_json_limited(R"({"s": "123456789012345678901234567890 \" 99999999999999999999999"})")["s"].get<std::string>().size(),
            56u);
}

}  // namespace
}  // namespace shardlm
