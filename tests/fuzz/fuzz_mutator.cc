#include "tests/fuzz/fuzz_mutator.h"

#include <algorithm>
#include <limits>
#include <sstream>
#include <utility>

namespace shardlm::fuzz {
namespace {

using nlohmann::json;

const char* const kNumbers[] = {"0",          "-1",          "1",           "255",         "256",
                                "65535",      "2147483647",  "2147483648",  "-2147483649", "4294967296",
                                "9223372036854775807",       "9223372036854775808",        "18446744073709551616",
                                "1e308",      "1e400",       "-1e400",      "0.5",         "-0.0",
                                "1e-320",     "268435456",   "4096",        "3.4e38"};

constexpr size_t kMaxCollected = 4096;

// Where a JSON object or array starts in `s` and ends (one past its last byte); false when none of
// the first few '{' / '[' starts a complete document.
bool find_json(const std::string& s, size_t& begin, size_t& end, json& value) {
  size_t from = 0;
  for (int tries = 0; tries < 3; ++tries) {
    begin = s.find_first_of("{[", from);
    if (begin == std::string::npos) return false;
    std::istringstream in(s.substr(begin));
    try {
      in >> value;  // reads one value and stops after it
    } catch (const json::exception&) {
      from = begin + 1;
      continue;
    }
    const std::streamoff consumed = in.eof() ? static_cast<std::streamoff>(s.size() - begin) : std::streamoff(in.tellg());
    if (consumed <= 0) return false;
    end = begin + static_cast<size_t>(consumed);
    return true;
  }
  return false;
}

// Every node of `root` (pre-order), at most `limit`.
void nodes_of(json& v, std::vector<json*>& out, size_t limit) {
  if (out.size() >= limit) return;
  out.push_back(&v);
  if (v.is_object() || v.is_array()) {
    for (auto& child : v) nodes_of(child, out, limit);
  }
}

}  // namespace

Mutator::Mutator(uint64_t seed, std::vector<std::string> dict, const std::vector<std::string>& corpus, size_t max_len)
    : rng_(seed), dict_(std::move(dict)), corpus_(corpus), max_len_(max_len) {
  for (const std::string& input : corpus_) {
    size_t begin = 0, end = 0;
    json doc;
    if (find_json(input, begin, end, doc)) collect(doc, 0);
  }
  for (const std::string& t : dict_) {
    if (t.size() >= 2 && t.front() == '"' && t.back() == '"') {
      json v = json::parse(t, nullptr, false);
      if (v.is_string()) {
        keys_.push_back(v.get<std::string>());
        strings_.push_back(v.get<std::string>());
      }
    }
  }
  std::sort(keys_.begin(), keys_.end());
  keys_.erase(std::unique(keys_.begin(), keys_.end()), keys_.end());
}

void Mutator::collect(const json& v, int depth) {
  if (depth > 64) return;  // corpus inputs may nest deeply; a few levels give enough material
  if (v.is_object()) {
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (keys_.size() < kMaxCollected) keys_.push_back(it.key());
      collect(it.value(), depth + 1);
    }
  } else if (v.is_array()) {
    for (const json& e : v) collect(e, depth + 1);
  } else if (v.is_string()) {
    if (strings_.size() < kMaxCollected) strings_.push_back(v.get<std::string>());
  } else if (values_.size() < kMaxCollected) {
    values_.push_back(v);  // scalars only: copying a subtree could recurse without bound
  }
}

void Mutator::mutate(std::string& s) {
  // Three mutants in four edit the JSON inside the input (when there is one) and only that, so they
  // stay JSON; the others edit bytes.
  const bool json_mode = rng_.below(4) != 0;
  const size_t ops = 1 + rng_.below(4);
  for (size_t i = 0; i < ops; ++i) {
    if (json_mode && json_edit(s)) continue;
    byte_edit(s);
  }
  if (s.size() > max_len_) s.resize(max_len_);
}

json Mutator::random_value() {
  switch (rng_.below(9)) {
    case 0: return nullptr;
    case 1: return rng_.below(2) == 0;
    case 2: {
      static const int64_t kInts[] = {0, 1, -1, 2, 255, 256, 65536, std::numeric_limits<int32_t>::max(),
                                      int64_t{1} << 31, -(int64_t{1} << 31) - 1, std::numeric_limits<int64_t>::max(),
                                      std::numeric_limits<int64_t>::min(), int64_t{1} << 28, int64_t{1} << 40};
      return kInts[rng_.below(sizeof kInts / sizeof kInts[0])];
    }
    case 3: {
      static const double kDoubles[] = {0.5, -0.0, 1e-7, 1e308, -1e308, 3.5e38, 1e-320, 2.5, 1e19, -1e19, 9.3e18};
      return kDoubles[rng_.below(sizeof kDoubles / sizeof kDoubles[0])];
    }
    case 4: return std::numeric_limits<uint64_t>::max() - rng_.below(2);
    case 5: {
      static const char* const kStrings[] = {"", " ", "x", "\n", "{}", "[]", "null", "0", "\xE2\x96\x81", "<|\"|>",
                                             "\xC3\xA9", "\\u0000"};
      if (!strings_.empty() && rng_.below(2) == 0) return strings_[rng_.below(strings_.size())];
      return kStrings[rng_.below(sizeof kStrings / sizeof kStrings[0])];
    }
    case 6: return json::array();
    case 7: return json::object();
    default:
      if (!values_.empty()) return values_[rng_.below(values_.size())];
      return nullptr;
  }
}

void Mutator::edit_value(json& root) {
  std::vector<json*> nodes;
  nodes_of(root, nodes, 2048);
  json& v = *nodes[rng_.below(nodes.size())];
  const size_t op = rng_.below(8);
  if (op == 0 || op == 1) {  // replace by another value
    v = random_value();
  } else if (op == 2 && v.is_object() && !v.empty()) {  // remove a key
    auto it = v.begin();
    std::advance(it, static_cast<std::ptrdiff_t>(rng_.below(v.size())));
    v.erase(it);
  } else if (op == 3 && v.is_object()) {  // add or overwrite a key
    const std::string key = keys_.empty() ? "x" : keys_[rng_.below(keys_.size())];
    v[key] = random_value();
  } else if (op == 4 && v.is_array() && !v.empty()) {  // remove or duplicate an element
    const size_t at = rng_.below(v.size());
    if (rng_.below(2) == 0) {
      v.erase(at);
    } else {
      json copy = v[at];
      v.insert(v.begin() + static_cast<std::ptrdiff_t>(rng_.below(v.size() + 1)), std::move(copy));
    }
  } else if (op == 5 && v.is_array()) {  // add an element
    v.insert(v.begin() + static_cast<std::ptrdiff_t>(rng_.below(v.size() + 1)), random_value());
  } else if (op == 6 && v.is_string()) {  // edit the string's bytes (stays valid as JSON text)
    std::string text = v.get<std::string>();
    byte_edit(text);
    v = json(std::move(text));
  } else if (op == 7) {  // wrap it, or replace it by a copy of another node of the document
    if (rng_.below(2) == 0) {
      v = rng_.below(2) == 0 ? json::array({v}) : json{{keys_.empty() ? "x" : keys_[rng_.below(keys_.size())], v}};
    } else {
      json copy = *nodes[rng_.below(nodes.size())];
      v = std::move(copy);
    }
  } else {
    v = random_value();
  }
}

bool Mutator::json_edit(std::string& s) {
  size_t begin = 0, end = 0;
  json doc;
  if (!find_json(s, begin, end, doc)) return false;
  if (keys_.size() < kMaxCollected || strings_.size() < kMaxCollected) collect(doc, 0);
  edit_value(doc);
  // Strings edited byte-wise may hold invalid UTF-8; write it back as U+FFFD.
  s = s.substr(0, begin) + doc.dump(-1, ' ', false, json::error_handler_t::replace) + s.substr(end);
  return true;
}

void Mutator::byte_edit(std::string& s) {
  auto pos = [&](bool inclusive) { return rng_.below(s.size() + (inclusive ? 1 : 0)); };
  switch (rng_.below(13)) {
    case 0:  // flip a bit
      if (!s.empty()) s[pos(false)] ^= static_cast<char>(1u << rng_.below(8));
      break;
    case 1:  // set a random byte
      if (!s.empty()) s[pos(false)] = static_cast<char>(rng_.next());
      break;
    case 2: {  // insert random bytes
      const size_t n = 1 + rng_.below(4);
      std::string bytes;
      for (size_t k = 0; k < n; ++k) bytes.push_back(static_cast<char>(rng_.next()));
      s.insert(pos(true), bytes);
      break;
    }
    case 3:  // erase a range
      if (!s.empty()) {
        const size_t at = pos(false);
        s.erase(at, 1 + rng_.below(std::min<size_t>(16, s.size() - at)));
      }
      break;
    case 4:  // copy a range of the input elsewhere in it
      if (!s.empty()) {
        const size_t at = pos(false);
        const std::string chunk = s.substr(at, 1 + rng_.below(std::min<size_t>(32, s.size() - at)));
        s.insert(pos(true), chunk);
      }
      break;
    case 5:  // insert a dictionary token
    case 6:
      if (!dict_.empty()) s.insert(pos(true), dict_[rng_.below(dict_.size())]);
      break;
    case 7:  // overwrite with a dictionary token
      if (!dict_.empty() && !s.empty()) {
        const std::string& t = dict_[rng_.below(dict_.size())];
        s.replace(pos(false), t.size(), t);
      }
      break;
    case 8: {  // replace a run of digits with an interesting number
      std::vector<size_t> starts;
      for (size_t i = 0; i < s.size(); ++i) {
        if ((s[i] >= '0' && s[i] <= '9') && (i == 0 || !(s[i - 1] >= '0' && s[i - 1] <= '9'))) starts.push_back(i);
      }
      const char* number = kNumbers[rng_.below(sizeof kNumbers / sizeof kNumbers[0])];
      if (starts.empty()) {
        s.insert(pos(true), number);
      } else {
        const size_t at = starts[rng_.below(starts.size())];
        size_t end = at;
        while (end < s.size() && s[end] >= '0' && s[end] <= '9') ++end;
        s.replace(at, end - at, number);
      }
      break;
    }
    case 9:  // an interesting byte or a little-endian integer of 1, 2, 4 or 8 bytes
      if (!s.empty()) {
        static const uint64_t kValues[] = {0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0xffff, 0x7fffffff, 0xffffffff,
                                           0x80000000, ~0ull, 0x8000000000000000ull, 0x7fffffffffffffffull};
        const uint64_t v = kValues[rng_.below(sizeof kValues / sizeof kValues[0])];
        const size_t width = size_t{1} << rng_.below(4);
        const size_t at = pos(false);
        for (size_t k = 0; k < width && at + k < s.size(); ++k) s[at + k] = static_cast<char>(v >> (8 * k));
      }
      break;
    case 10:  // splice: this input's head with another input's tail
      if (!corpus_.empty()) {
        const std::string& o = corpus_[rng_.below(corpus_.size())];
        s = s.substr(0, pos(true)) + o.substr(rng_.below(o.size() + 1));
      }
      break;
    case 11:  // truncate
      s.resize(pos(true));
      break;
    case 12:  // swap two bytes
      if (s.size() >= 2) std::swap(s[pos(false)], s[pos(false)]);
      break;
  }
}

}  // namespace shardlm::fuzz
