// What the HTTP API needs of the text service: submit / cancel, tokenizing, and the served model's
// name and context. The server talks to this interface; text_service_backend() adapts a TextService.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "coordinator/text_service.h"

namespace shardlm::http {

class TextBackend {
 public:
  virtual ~TextBackend() = default;
  virtual std::string model_name() const = 0;
  virtual int64_t max_context() const = 0;
  // As TextService::submit: throws RequestError (or Error for bad input); the observer is called on
  // another thread and must not block.
  virtual uint64_t submit(const TextRequest& request, std::shared_ptr<TextObserver> observer) = 0;
  // submit in two parts, as TextService's: prepare (the costly part, which the server runs off its I/O
  // threads; throws as submit) and the queueing. By default prepare only keeps the request.
  virtual PreparedText prepare(const TextRequest& request) {
    PreparedText p;
    p.request = request;
    return p;
  }
  virtual uint64_t submit_prepared(PreparedText prepared, std::shared_ptr<TextObserver> observer) {
    return submit(prepared.request, std::move(observer));
  }
  virtual void cancel(uint64_t id) = 0;

  // POST /tokenize and /detokenize: the tokens generation would see for the request's prompt (a chat
  // rendered with the template; throws RequestError as prepare), the vocabulary piece of each id, and
  // the text of ids (both throw RequestError kInvalidRequest naming an id that is not a token).
  virtual std::vector<int32_t> tokenize(const TextRequest& request) = 0;
  virtual std::vector<std::string> token_pieces(const std::vector<int32_t>& ids) = 0;
  virtual std::string detokenize(const std::vector<int32_t>& ids) = 0;
};

// Forwards to `service`, which must outlive the backend. With max_prompt_tokens > 0, a request whose
// prompt (after chat rendering) has more tokens is refused with RequestError kContextLength.
std::unique_ptr<TextBackend> text_service_backend(TextService& service, int64_t max_prompt_tokens = 0);

}  // namespace shardlm::http
