#include "coordinator/http/text_backend.h"

#include "coordinator/request_error.h"

namespace shardlm::http {
namespace {

class ServiceBackend : public TextBackend {
 public:
  ServiceBackend(TextService& service, int64_t max_prompt_tokens) : service_(service), max_prompt_tokens_(max_prompt_tokens) {}
  std::string model_name() const override { return service_.model_name(); }
  int64_t max_context() const override { return service_.max_context(); }
  uint64_t submit(const TextRequest& request, std::shared_ptr<TextObserver> observer) override {
    return service_.submit(request, std::move(observer), max_prompt_tokens_);
  }
  PreparedText prepare(const TextRequest& request) override { return service_.prepare(request, max_prompt_tokens_); }
  uint64_t submit_prepared(PreparedText prepared, std::shared_ptr<TextObserver> observer) override {
    return service_.submit_prepared(std::move(prepared), std::move(observer));
  }
  void cancel(uint64_t id) override { service_.cancel(id); }
  std::vector<int32_t> tokenize(const TextRequest& request) override { return service_.prompt_tokens(request); }
  std::vector<std::string> token_pieces(const std::vector<int32_t>& ids) override {
    check_ids(ids);
    std::vector<std::string> out;
    out.reserve(ids.size());
    for (int32_t id : ids) out.push_back(service_.tokenizer().piece(id));
    return out;
  }
  std::string detokenize(const std::vector<int32_t>& ids) override {
    check_ids(ids);
    return service_.tokenizer().decode(ids);
  }

 private:
  void check_ids(const std::vector<int32_t>& ids) const {
    for (size_t i = 0; i < ids.size(); ++i) {
      if (!service_.tokenizer().is_valid(ids[i])) {
        fail_request(RequestErrorCode::kInvalidRequest, "tokens[{}]: {} is not a token of this model's tokenizer (its ids are 0 to {})",
                     i, ids[i], service_.tokenizer().vocab_size() - 1);
      }
    }
  }

  TextService& service_;
  int64_t max_prompt_tokens_;
};

}  // namespace

std::unique_ptr<TextBackend> text_service_backend(TextService& service, int64_t max_prompt_tokens) {
  return std::make_unique<ServiceBackend>(service, max_prompt_tokens);
}

}  // namespace shardlm::http
