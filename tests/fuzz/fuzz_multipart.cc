// Fuzz target: parse_multipart on an arbitrary POST /v1/files body. It must either throw
// shardlm::Error naming what is malformed or return parts that each have a name, with find_part
// finding the first part of each name. Anything else (another exception, a crash, a sanitizer
// report) is a bug.
#include <cstdint>
#include <vector>

#include "common/error.h"
#include "coordinator/jobs/multipart.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shardlm;
  using namespace shardlm::jobs;
  std::vector<FormPart> parts;
  try {
    parts = parse_multipart(fuzz::as_text(data, size));
  } catch (const Error&) {
    return 0;
  }
  size_t total = 0;
  for (const FormPart& p : parts) {
    FUZZ_CHECK(!p.name.empty());
    const FormPart* first = find_part(parts, p.name);
    FUZZ_CHECK(first != nullptr && first->name == p.name && first <= &p);
    total += p.data.size();
  }
  FUZZ_CHECK(total <= size);
  return 0;
}
