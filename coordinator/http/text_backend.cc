#include "coordinator/http/text_backend.h"

namespace shardlm::http {
namespace {

class ServiceBackend : public TextBackend {
 public:
  explicit ServiceBackend(TextService& service) : service_(service) {}
  std::string model_name() const override { return service_.model_name(); }
  int64_t max_context() const override { return service_.max_context(); }
  uint64_t submit(const TextRequest& request, std::shared_ptr<TextObserver> observer) override {
    return service_.submit(request, std::move(observer));
  }
  void cancel(uint64_t id) override { service_.cancel(id); }

 private:
  TextService& service_;
};

}  // namespace

std::unique_ptr<TextBackend> text_service_backend(TextService& service) {
  return std::make_unique<ServiceBackend>(service);
}

}  // namespace shardlm::http
