// multipart/form-data parsing of POST /v1/files bodies.
#include <gtest/gtest.h>

#include "common/error.h"
#include "coordinator/jobs/multipart.h"

namespace shardlm::jobs {
namespace {

TEST(Multipart, ParsesFieldsAndFiles) {
  const std::string body =
      "------formdata-undici-0123\r\n"
      "Content-Disposition: form-data; name=\"purpose\"\r\n"
      "\r\n"
      "batch\r\n"
      "------formdata-undici-0123\r\n"
      "Content-Disposition: form-data; name=\"file\"; filename=\"my \\\"batch\\\".jsonl\"\r\n"
      "Content-Type: application/jsonl\r\n"
      "\r\n"
      "{\"a\":1}\r\n{\"b\":2}\r\n"
      "\r\n"
      "------formdata-undici-0123--\r\n";
  const std::vector<FormPart> parts = parse_multipart(body);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0].name, "purpose");
  EXPECT_FALSE(parts[0].filename.has_value());
  EXPECT_EQ(parts[0].data, "batch");
  EXPECT_EQ(parts[1].name, "file");
  EXPECT_EQ(parts[1].filename.value_or(""), "my \"batch\".jsonl");
  EXPECT_EQ(parts[1].content_type, "application/jsonl");
  EXPECT_EQ(parts[1].data, "{\"a\":1}\r\n{\"b\":2}\r\n");  // the bytes exactly, line breaks included
  EXPECT_EQ(find_part(parts, "file"), &parts[1]);
  EXPECT_EQ(find_part(parts, "nope"), nullptr);
}

TEST(Multipart, PreambleBinaryDataAndBareLineFeeds) {
  std::string data("\x00\x01--x\n\xff", 6);
  const std::string body = "preamble text\n--XyZ\nContent-Disposition: form-data; name=file; filename=a.bin\n\n" + data +
                           "\n--XyZ\ncontent-disposition: form-data; name=\"purpose\"\n\nbatch\n--XyZ--";
  const std::vector<FormPart> parts = parse_multipart(body);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0].filename.value_or(""), "a.bin");
  EXPECT_EQ(parts[0].data, data);
  EXPECT_EQ(parts[1].data, "batch");
}

TEST(Multipart, MalformedBodiesAreRefused) {
  EXPECT_THROW(parse_multipart("{\"input\": 1}"), Error);
  EXPECT_THROW(parse_multipart(""), Error);
  EXPECT_THROW(parse_multipart("--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nno end"), Error);
  EXPECT_THROW(parse_multipart("--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--"), Error);  // no name
  EXPECT_THROW(parse_multipart("--b\r\nContent-Disposition: form-data; name=\"x\""), Error);  // headers cut
  EXPECT_THROW(parse_multipart("--b\r\nnot a header\r\n\r\nx\r\n--b--"), Error);
}

}  // namespace
}  // namespace shardlm::jobs
