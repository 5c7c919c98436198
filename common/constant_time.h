// Secrets compared in constant time: constant_time_equal() for two strings of any lengths, and
// ApiKeySet, the API keys a server accepts, kept as SHA-256 digests and checked against every key
// without stopping at a match, so that neither where a guess differs nor which key matched shows in
// the time taken. Header-only; users link OpenSSL::Crypto (SHA-256 and CRYPTO_memcmp).
#pragma once

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace shardlm {

using Sha256Digest = std::array<unsigned char, 32>;

inline Sha256Digest sha256(std::string_view data) {
  Sha256Digest out{};
  unsigned int size = 0;
  if (EVP_Digest(data.data(), data.size(), out.data(), &size, EVP_sha256(), nullptr) != 1 || size != out.size()) {
    fail("SHA-256 failed (OpenSSL)");
  }
  return out;
}

// Equal-length digests of both sides compared with CRYPTO_memcmp: the time depends on neither the
// contents nor on where they differ (only on the lengths, through hashing).
inline bool constant_time_equal(std::string_view a, std::string_view b) {
  const Sha256Digest da = sha256(a);
  const Sha256Digest db = sha256(b);
  return CRYPTO_memcmp(da.data(), db.data(), da.size()) == 0;
}

class ApiKeySet {
 public:
  ApiKeySet() = default;
  // Empty keys are left out (they would let an absent key in).
  explicit ApiKeySet(const std::vector<std::string>& keys) {
    for (const std::string& k : keys) {
      if (!k.empty()) digests_.push_back(sha256(k));
    }
  }

  bool empty() const { return digests_.empty(); }
  size_t size() const { return digests_.size(); }

  // The index (among the non-empty keys, in order) of the key equal to `candidate`, or -1. Every
  // stored digest is compared, and the index is picked without a branch on the comparison.
  int find(std::string_view candidate) const {
    if (digests_.empty()) return -1;
    const Sha256Digest d = sha256(candidate);
    int64_t found = -1;
    for (size_t i = 0; i < digests_.size(); ++i) {
      const int64_t equal = CRYPTO_memcmp(d.data(), digests_[i].data(), d.size()) == 0;
      const int64_t mask = -equal;  // all ones when equal
      found = (found & ~mask) | (static_cast<int64_t>(i) & mask);
    }
    return static_cast<int>(found);
  }
  bool contains(std::string_view candidate) const { return find(candidate) >= 0; }

 private:
  std::vector<Sha256Digest> digests_;
};

}  // namespace shardlm
