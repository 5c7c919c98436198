// multipart/form-data bodies (RFC 7578), as POST /v1/files receives them from OpenAI clients: the
// parts with their field name, file name and bytes. The boundary is read from the body's first
// delimiter line ("--BOUNDARY"), since extra HTTP routes see the body but not the Content-Type header.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shardlm::jobs {

struct FormPart {
  std::string name;                     // Content-Disposition name
  std::optional<std::string> filename;  // Content-Disposition filename (file fields)
  std::string content_type;             // the part's Content-Type ("" when absent)
  std::string data;
};

// Throws Error naming what is malformed (no delimiter line, a part without headers or without a
// name, no closing delimiter).
std::vector<FormPart> parse_multipart(std::string_view body);

// The first part named `name`, or nullptr.
const FormPart* find_part(const std::vector<FormPart>& parts, std::string_view name);

}  // namespace shardlm::jobs
