// Fuzz target: raw HTTP/1.1 bytes as the API server reads them: Boost.Beast's request parser with the
// server's header limit (and a 1 MiB body limit), then ApiRouter::handle of each complete request
// (several may follow each other on a keep-alive connection), once on a router with an API key and
// once on one without. The router must answer every request with a reply or a validated generation;
// a reply must be a 2xx/4xx/503 with a JSON body — a 500 means an exception other than the request
// errors escaped the parsing. Anything else (a crash, a sanitizer report) is a bug.
#include <utility>  // before Asio (it uses std::exchange etc. without including it in 1.74)

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "coordinator/http/api_router.h"
#include "coordinator/http/text_backend.h"
#include "coordinator/request_error.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

namespace bhttp = boost::beast::http;

constexpr const char* kModel = "fuzz-model";

// The router asks for the model's name and context, and tokenizes (here bytes are tokens, ids past
// 255 are refused as the real backend refuses ids past its vocabulary); requests are never submitted.
class NameOnlyBackend : public shardlm::http::TextBackend {
 public:
  std::string model_name() const override { return kModel; }
  int64_t max_context() const override { return 4096; }
  uint64_t submit(const shardlm::TextRequest&, std::shared_ptr<shardlm::TextObserver>) override {
    shardlm::fail("fuzz backend: submit is not available");
  }
  void cancel(uint64_t) override {}
  std::vector<int32_t> tokenize(const shardlm::TextRequest& request) override {
    return std::vector<int32_t>(request.prompt.begin(), request.prompt.end());
  }
  std::vector<std::string> token_pieces(const std::vector<int32_t>& ids) override {
    check(ids);
    std::vector<std::string> out;
    for (int32_t id : ids) out.emplace_back(1, static_cast<char>(id));
    return out;
  }
  std::string detokenize(const std::vector<int32_t>& ids) override {
    check(ids);
    return std::string(ids.begin(), ids.end());
  }

 private:
  static void check(const std::vector<int32_t>& ids) {
    for (int32_t id : ids) {
      if (id < 0 || id > 255) shardlm::fail_request(shardlm::RequestErrorCode::kInvalidRequest, "{} is not a token", id);
    }
  }
};

void route(const shardlm::http::ApiRouter& router, const shardlm::http::HttpRequestView& view) {
  using namespace shardlm::http;
  const ApiRouter::Outcome outcome = router.handle(view);
  FUZZ_CHECK(outcome.reply.has_value() != outcome.generation.has_value());
  if (outcome.reply) {
    const int status = outcome.reply->status;
    if (status == 500) std::fprintf(stderr, "500 reply: %s\n", outcome.reply->body.c_str());
    FUZZ_CHECK((status >= 200 && status < 300) || (status >= 400 && status < 500) || status == 503);
    FUZZ_CHECK(nlohmann::json::accept(outcome.reply->body));
  } else {
    FUZZ_CHECK(outcome.generation->model == kModel);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shardlm::http;
  static NameOnlyBackend backend;
  static ApiRouter open_router(backend, std::vector<std::string>{});
  static ApiRouter keyed_router(backend, std::vector<std::string>{"sk-fuzz"});
  static const bool ready = (open_router.set_ready(true), true);
  (void)ready;

  const char* p = reinterpret_cast<const char*>(data);
  size_t left = size;
  for (int requests = 0; requests < 8 && left > 0; ++requests) {
    bhttp::request_parser<bhttp::string_body> parser;
    parser.header_limit(64 * 1024);
    parser.body_limit(1 << 20);
    parser.eager(true);
    boost::beast::error_code ec;
    while (left > 0 && !parser.is_done()) {
      const size_t n = parser.put(boost::asio::const_buffer(p, left), ec);
      p += n;
      left -= n;
      if (ec || n == 0) break;
    }
    if (ec == bhttp::error::need_more || (!ec && !parser.is_done())) {
      parser.put_eof(ec);
    }
    if (ec || !parser.is_done()) return 0;
    bhttp::request<bhttp::string_body>& req = parser.get();
    HttpRequestView view;
    view.method = std::string(req.method_string());
    view.target = std::string(req.target());
    view.authorization = std::string(req[bhttp::field::authorization]);
    view.body = std::move(req.body());
    route(open_router, view);
    route(keyed_router, view);
    if (!req.keep_alive()) break;
  }
  return 0;
}
