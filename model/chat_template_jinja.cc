// Python Jinja2 value semantics on JSON values (see chat_template_jinja.h).
#include "model/chat_template_jinja.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>

#include "common/error.h"

namespace shardlm::jinja {

using nlohmann::json;

Value item(Value v, std::string_view key) {
  if (v == nullptr || !v->is_object()) return nullptr;
  auto it = v->find(key);
  return it == v->end() ? nullptr : &*it;
}

bool is_defined(Value v) { return v != nullptr; }
bool is_string(Value v) { return v != nullptr && v->is_string(); }
bool is_mapping(Value v) { return v != nullptr && v->is_object(); }
bool is_list(Value v) { return v != nullptr && v->is_array(); }
bool is_none(Value v) { return v != nullptr && v->is_null(); }

bool truthy(Value v) {
  if (v == nullptr) return false;
  switch (v->type()) {
    case json::value_t::null: return false;
    case json::value_t::boolean: return v->get<bool>();
    case json::value_t::number_integer: return v->get<int64_t>() != 0;
    case json::value_t::number_unsigned: return v->get<uint64_t>() != 0;
    case json::value_t::number_float: return v->get<double>() != 0.0;
    case json::value_t::string: return !v->get_ref<const std::string&>().empty();
    case json::value_t::array:
    case json::value_t::object: return !v->empty();
    default: return false;
  }
}

std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  if (d == 0.0) return std::signbit(d) ? "-0.0" : "0.0";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, std::fabs(d), std::chars_format::scientific);
  const std::string sci(buf, res.ptr);  // shortest round-trip digits: "d[.ddd]e[+-]XX"
  const size_t e = sci.find('e');
  std::string digits;
  for (size_t i = 0; i < e; ++i) {
    if (sci[i] != '.') digits += sci[i];
  }
  const int exp10 = std::stoi(sci.substr(e + 1));
  std::string out = d < 0 ? "-" : "";
  if (exp10 >= -4 && exp10 < 16) {  // Python repr: fixed notation for 1e-4 <= |d| < 1e16
    if (exp10 >= 0) {
      std::string int_part = digits.substr(0, std::min<size_t>(digits.size(), exp10 + 1));
      int_part.append(static_cast<size_t>(exp10 + 1) - int_part.size(), '0');
      std::string frac = digits.size() > static_cast<size_t>(exp10 + 1) ? digits.substr(exp10 + 1) : "0";
      out += int_part + "." + frac;
    } else {
      out += "0." + std::string(static_cast<size_t>(-exp10 - 1), '0') + digits;
    }
  } else {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    const int a = std::abs(exp10);
    out += fmt::format("e{}{:02d}", exp10 < 0 ? '-' : '+', a);
  }
  return out;
}

namespace {

// Decodes the UTF-8 character at s[i] (lenient: an invalid byte is returned as itself, length 1).
uint32_t decode_at(std::string_view s, size_t i, size_t* len) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  int n = b0 < 0x80 ? 1 : (b0 >> 5) == 6 ? 2 : (b0 >> 4) == 14 ? 3 : (b0 >> 3) == 30 ? 4 : 0;
  if (n == 0 || i + n > s.size()) {
    *len = 1;
    return b0;
  }
  uint32_t cp = n == 1 ? b0 : n == 2 ? (b0 & 0x1f) : n == 3 ? (b0 & 0x0f) : (b0 & 0x07);
  for (int k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xc0) != 0x80) {
      *len = 1;
      return b0;
    }
    cp = (cp << 6) | (b & 0x3f);
  }
  *len = n;
  return cp;
}

bool py_isspace(uint32_t c) {
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f ||
         c == 0x3000;
}

std::string string_repr(const std::string& s) {
  const bool has_single = s.find('\'') != std::string::npos;
  const bool has_double = s.find('"') != std::string::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  for (size_t i = 0; i < s.size();) {
    size_t len = 1;
    const uint32_t c = decode_at(s, i, &len);
    if (c == static_cast<uint32_t>(quote) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || (c >= 0x7f && c <= 0xa0) || c == 0xad) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out.append(s, i, len);
    }
    i += len;
  }
  out += quote;
  return out;
}

std::string container_str(const json& v) {
  std::string out;
  if (v.is_array()) {
    out = "[";
    for (size_t i = 0; i < v.size(); ++i) {
      if (i) out += ", ";
      out += repr(v[i]);
    }
    return out + "]";
  }
  out = "{";
  bool first = true;
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (!first) out += ", ";
    first = false;
    out += string_repr(it.key()) + ": " + repr(it.value());
  }
  return out + "}";
}

}  // namespace

std::string repr(const json& v) {
  if (v.is_string()) return string_repr(v.get_ref<const std::string&>());
  return to_str(&v);
}

std::string to_str(Value v) {
  if (v == nullptr) return "";
  switch (v->type()) {
    case json::value_t::null: return "None";
    case json::value_t::boolean: return v->get<bool>() ? "True" : "False";
    case json::value_t::number_integer: return std::to_string(v->get<int64_t>());
    case json::value_t::number_unsigned: return std::to_string(v->get<uint64_t>());
    case json::value_t::number_float: return float_repr(v->get<double>());
    case json::value_t::string: return v->get<std::string>();
    case json::value_t::array:
    case json::value_t::object: return container_str(*v);
    default: return "";
  }
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

std::string strip(std::string_view s) {
  size_t begin = 0;
  while (begin < s.size()) {
    size_t len = 1;
    if (!py_isspace(decode_at(s, begin, &len))) break;
    begin += len;
  }
  size_t end = s.size();
  while (end > begin) {
    size_t start = end - 1;
    while (start > begin && (static_cast<unsigned char>(s[start]) & 0xc0) == 0x80) --start;
    size_t len = 1;
    const uint32_t c = decode_at(s, start, &len);
    if (start + len != end || !py_isspace(c)) break;
    end = start;
  }
  return std::string(s.substr(begin, end - begin));
}

std::vector<std::pair<std::string, Value>> dictsort(const json& mapping) {
  std::vector<std::pair<std::string, Value>> items;
  if (!mapping.is_object()) return items;
  for (auto it = mapping.begin(); it != mapping.end(); ++it) items.emplace_back(it.key(), &it.value());
  auto lower = [](const std::string& s) {
    std::string out = s;
    for (char& c : out) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
  };
  std::stable_sort(items.begin(), items.end(),
                   [&](const auto& a, const auto& b) { return lower(a.first) < lower(b.first); });
  return items;
}

std::vector<json> iterate(Value v, const std::string& where) {
  std::vector<json> out;
  if (v == nullptr) return out;
  if (v->is_array()) {
    out.assign(v->begin(), v->end());
  } else if (v->is_object()) {
    for (auto it = v->begin(); it != v->end(); ++it) out.emplace_back(it.key());
  } else if (v->is_string()) {
    const std::string& s = v->get_ref<const std::string&>();
    for (size_t i = 0; i < s.size();) {
      size_t len = 1;
      decode_at(s, i, &len);
      out.emplace_back(s.substr(i, len));
      i += len;
    }
  } else {
    fail("{} must be a list, not {}", where, v->type_name());
  }
  return out;
}

}  // namespace shardlm::jinja
