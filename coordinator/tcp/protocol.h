// Shared pieces of the TCP client protocol (proto/client.proto) for the server and the client: the
// protocol version, the names of error codes and finish reasons, and UTF-8 repair for string fields.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "proto/client.pb.h"

namespace shardlm::tcp {

inline constexpr uint32_t kProtocolMajor = client::PROTOCOL_MAJOR_VERSION;
inline constexpr uint32_t kProtocolMinor = client::PROTOCOL_MINOR_VERSION;
inline constexpr const char* kSoftwareName = "shardlm 0.1.0";

// "invalid_request", "context_length", "queue_full", "unavailable", "not_found", "internal",
// "unauthorized", "malformed", "version_mismatch", "frame_too_large", "rate_limited" ("unknown" otherwise).
const char* error_code_name(client::ErrorCode code);
// "stop", "length", "tool_calls", "cancelled" ("unknown" otherwise).
const char* finish_reason_name(client::FinishReason reason);
// "in_progress", "finalizing", "completed", "cancelling", "cancelled", "failed" ("unknown" otherwise):
// the OpenAI Batch API's names of the job states.
const char* job_state_name(client::JobState state);
// The name of a ClientMessage's body ("hello", "generate", ...; "empty" when none is set).
const char* message_kind(const client::ClientMessage& message);
const char* message_kind(const client::ServerMessage& message);

// `text` with every byte that is not part of a well-formed UTF-8 character replaced by U+FFFD
// (protobuf string fields must hold valid UTF-8).
std::string valid_utf8(std::string_view text);

}  // namespace shardlm::tcp
