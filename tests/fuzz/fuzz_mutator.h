// Deterministic input mutation for the plain fuzz driver (fuzz_driver.cc): byte-level edits as
// libFuzzer makes them (bit flips, byte edits, inserted dictionary tokens, interesting integers and
// numbers, splices of two inputs), plus edits of the JSON document inside an input (replace a value
// by one of another type or by an interesting one, add or remove object keys and array elements,
// copy subtrees), which keep a JSON input JSON so that the parsers' field validation is reached
// rather than only the JSON syntax check. The same seed gives the same sequence everywhere.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace shardlm::fuzz {

// SplitMix64: the same sequence on every platform and standard library.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  size_t below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(next() % n); }

 private:
  uint64_t s_;
};

class Mutator {
 public:
  // `dict`: tokens to insert; `corpus`: the inputs (splice partners; their JSON keys, strings and
  // values feed the JSON edits); mutants are cut to max_len bytes.
  Mutator(uint64_t seed, std::vector<std::string> dict, const std::vector<std::string>& corpus, size_t max_len);

  // Applies one to four edits to `s`.
  void mutate(std::string& s);

  Rng& rng() { return rng_; }

 private:
  void byte_edit(std::string& s);
  bool json_edit(std::string& s);  // false when `s` holds no JSON object or array
  void edit_value(nlohmann::json& root);
  nlohmann::json random_value();
  void collect(const nlohmann::json& v, int depth);

  Rng rng_;
  std::vector<std::string> dict_;
  const std::vector<std::string>& corpus_;
  size_t max_len_;
  // From the corpus's JSON documents, the documents edited so far and the dictionary's quoted
  // strings (at most a few thousand each).
  std::vector<std::string> keys_;
  std::vector<std::string> strings_;
  std::vector<nlohmann::json> values_;
};

}  // namespace shardlm::fuzz
