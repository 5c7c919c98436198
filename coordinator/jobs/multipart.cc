#include "coordinator/jobs/multipart.h"

#include <cctype>

#include "common/error.h"

namespace shardlm::jobs {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// The value of parameter `key` in a header like: form-data; name="file"; filename="a.jsonl".
std::optional<std::string> header_param(std::string_view header, std::string_view key) {
  size_t i = 0;
  while (i < header.size()) {
    const size_t semi = header.find(';', i);
    if (semi == std::string_view::npos) return std::nullopt;
    i = semi + 1;
    while (i < header.size() && (header[i] == ' ' || header[i] == '\t')) ++i;
    const size_t eq = header.find('=', i);
    if (eq == std::string_view::npos) return std::nullopt;
    const std::string name = lower(trim(header.substr(i, eq - i)));
    size_t v = eq + 1;
    std::string value;
    if (v < header.size() && header[v] == '"') {
      ++v;
      while (v < header.size() && header[v] != '"') {
        if (header[v] == '\\' && v + 1 < header.size()) ++v;
        value.push_back(header[v]);
        ++v;
      }
      i = v + 1;
    } else {
      const size_t end = header.find(';', v);
      value = std::string(trim(header.substr(v, end == std::string_view::npos ? std::string_view::npos : end - v)));
      i = end == std::string_view::npos ? header.size() : end;
    }
    if (name == key) return value;
  }
  return std::nullopt;
}

}  // namespace

std::vector<FormPart> parse_multipart(std::string_view body) {
  // The first line that starts with "--" is the delimiter (anything before it is a preamble).
  size_t pos = 0;
  std::string delimiter;
  while (pos < body.size()) {
    size_t eol = body.find('\n', pos);
    if (eol == std::string_view::npos) eol = body.size();
    std::string_view line = trim(body.substr(pos, eol - pos));
    if (line.size() > 2 && line.substr(0, 2) == "--") {
      delimiter = std::string(line);
      pos = eol + 1;
      break;
    }
    pos = eol + 1;
  }
  if (delimiter.empty()) fail("the body is not multipart/form-data (no \"--boundary\" line)");
  const std::string next = "\n" + delimiter;
  std::vector<FormPart> parts;
  for (;;) {
    FormPart part;
    // Headers up to an empty line.
    bool saw_disposition = false;
    for (;;) {
      if (pos >= body.size()) fail("multipart body: a part ends inside its headers");
      size_t eol = body.find('\n', pos);
      if (eol == std::string_view::npos) fail("multipart body: a part ends inside its headers");
      std::string_view line = body.substr(pos, eol - pos);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      pos = eol + 1;
      if (line.empty()) break;
      const size_t colon = line.find(':');
      if (colon == std::string_view::npos) fail("multipart body: malformed part header '{}'", line);
      const std::string name = lower(trim(line.substr(0, colon)));
      const std::string_view value = trim(line.substr(colon + 1));
      if (name == "content-disposition") {
        saw_disposition = true;
        if (auto n = header_param(value, "name")) part.name = *n;
        part.filename = header_param(value, "filename");
      } else if (name == "content-type") {
        part.content_type = std::string(value);
      }
    }
    if (!saw_disposition || part.name.empty()) fail("multipart body: a part has no Content-Disposition name");
    const size_t end = body.find(next, pos);
    if (end == std::string_view::npos) fail("multipart body: no closing boundary after the part '{}'", part.name);
    size_t data_end = end;
    if (data_end > pos && body[data_end - 1] == '\r') --data_end;
    part.data = std::string(body.substr(pos, data_end - pos));
    parts.push_back(std::move(part));
    pos = end + next.size();
    if (body.substr(pos, 2) == "--") break;  // the closing delimiter
    const size_t eol = body.find('\n', pos);
    if (eol == std::string_view::npos) fail("multipart body: the closing boundary is missing");
    pos = eol + 1;
  }
  return parts;
}

const FormPart* find_part(const std::vector<FormPart>& parts, std::string_view name) {
  for (const FormPart& p : parts) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

}  // namespace shardlm::jobs
