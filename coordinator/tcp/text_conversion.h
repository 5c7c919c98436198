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
// The request's `model` field is not checked here; echo is checked (completion prompts only) but
// applied by the caller, which sends the prompt's text first.
TextRequest to_text_request(const client::GenerateRequest& request);

// `next_tool_call` numbers the tool calls of the delta's choice ("call_0", "call_1", ...) and is advanced.
void to_proto_delta(const TextDelta& delta, int& next_tool_call, client::Delta& out);
// "stop" (and anything unknown), "length", "tool_calls", "cancelled".
client::FinishReason to_proto_finish_reason(const std::string& reason);
// For every finish_reason except "error" (which becomes an Error message, ERROR_INTERNAL).
void to_proto_finish(const TextFinish& finish, client::Finish& out);
client::ErrorCode to_proto_error_code(RequestErrorCode code);

}  // namespace shardlm::tcp
