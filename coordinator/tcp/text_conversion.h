// Between the client protocol's generation messages (proto/client.proto) and the text service's types:
// a GenerateRequest becomes a TextRequest (refusing malformed fields with RequestError), and the
// service's deltas, finish and errors become Delta, Finish and Error messages.
#pragma once

#include <string>

#include "coordinator/request_error.h"
#include "coordinator/text_service.h"
#include "proto/client.pb.h"

namespace shardlm::tcp {

// Throws RequestError(kInvalidRequest) naming the field that is missing, malformed or out of range.
// The request's `model` field is not checked here.
TextRequest to_text_request(const client::GenerateRequest& request);

// `next_tool_call` numbers the request's tool calls ("call_0", "call_1", ...) and is advanced.
void to_proto_delta(const TextDelta& delta, int& next_tool_call, client::Delta& out);
// For every finish_reason except "error" (which becomes an Error message, ERROR_INTERNAL).
void to_proto_finish(const TextFinish& finish, client::Finish& out);
client::ErrorCode to_proto_error_code(RequestErrorCode code);

}  // namespace shardlm::tcp
