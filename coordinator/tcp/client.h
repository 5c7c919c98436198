// A blocking client of the TCP client protocol (proto/client.proto), used by `shardlm client` and the
// tests: connects and does the handshake, then runs requests. High level: generate / chat / run
// stream one request's deltas to a callback and return its Finish; models(); health(); batch jobs
// (job_submit, job_status, job_list, job_cancel, job_results streaming result chunks). Low level:
// send_generate / send_cancel / receive keep any number of requests in flight on the connection.
// A server Error becomes a ServerError (code + message); a connection-level one also closes the client.
// With tls the frames run inside TLS, the server's certificate verified against a CA file or the
// system's CAs and the host name connected to (unless tls_insecure).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "proto/client.pb.h"
#include "proto/frame.h"

namespace shardlm::tcp {

struct ClientOptions {
  double connect_timeout_s = 10;  // connecting plus the handshake
  uint32_t max_frame_bytes = kDefaultMaxFrameBytes;  // largest frame accepted from the server
  std::string client_name = "shardlm-client";
  bool tls = false;
  std::string tls_ca_file;    // PEM CA certificate(s) to verify the server with; empty: the system's CAs
  bool tls_insecure = false;  // accept any certificate and host name (testing only)
};

// An Error message from the server. what(): "MESSAGE (CODE_NAME)".
class ServerError : public Error {
 public:
  ServerError(client::ErrorCode code, const std::string& message);
  client::ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  client::ErrorCode code_;
  std::string message_;
};

// Request fields of generate() / chat(); absent ones take the server's defaults.
struct RequestOptions {
  std::optional<int32_t> max_tokens;
  std::optional<float> temperature;
  std::optional<int32_t> top_k;
  std::optional<float> top_p;
  std::optional<float> min_p;
  std::optional<uint64_t> seed;
  std::optional<float> presence_penalty;
  std::optional<float> frequency_penalty;
  std::optional<float> repetition_penalty;
  std::map<int32_t, float> logit_bias;  // token id -> added to its logit
  std::optional<int32_t> min_tokens;
  // Guided decoding (protocol 1.5; at most one).
  bool guided_json_object = false;
  std::string guided_json_schema;  // a JSON Schema as JSON text
  std::vector<std::string> guided_choice;
  bool include_stop_str_in_output = false;
  std::vector<std::string> stop;
  std::optional<int32_t> top_logprobs;
  // Protocol 1.6: choices (Delta.index), the prompt's log-probabilities, echo (completion prompts).
  std::optional<int32_t> n;
  std::optional<int32_t> prompt_logprobs;
  bool echo = false;
  bool ignore_eos = false;
  bool enable_thinking = false;  // chat
  std::string tools_json;        // chat: OpenAI tool declarations (JSON array text)
  std::string tool_choice;       // chat: "", "auto", "none" or "required"
  std::string tool_choice_function;  // chat: the function the model's turn must call
  bool continue_final_message = false;  // chat: the model continues the last (assistant) message
  std::string model;             // empty: the served model
};

// "HOST:PORT" or "[IPV6]:PORT" -> (host, port). Throws Error naming the text when malformed.
std::pair<std::string, int> parse_host_port(const std::string& text);

class Client {
 public:
  using DeltaCallback = std::function<void(const client::Delta&)>;

  explicit Client(ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Connects and sends Hello. Throws Error when the server cannot be reached or does not answer in
  // time, ServerError when it refuses (version mismatch, missing / wrong API key).
  void connect(const std::string& host, int port, const std::string& api_key = {});
  bool connected() const;
  const client::Welcome& welcome() const;  // the server's handshake reply
  void close();

  // One request to its end: on_delta for each Delta, then the Finish is returned. Throws ServerError
  // when the server answers with an Error. While `interrupt` (set_interrupt) is true the request is
  // cancelled and its Finish (finish_reason cancelled) returned.
  client::Finish run(const client::GenerateRequest& request, const DeltaCallback& on_delta);
  client::Finish generate(const std::string& prompt, const RequestOptions& options, const DeltaCallback& on_delta);
  client::Finish chat(const std::vector<client::ChatMessage>& messages, const RequestOptions& options,
                      const DeltaCallback& on_delta);
  std::vector<client::ModelInfo> models();
  client::HealthStatus health();

  // Batch jobs. Throw ServerError when the server refuses (ERROR_NOT_FOUND for an unknown job,
  // ERROR_UNAVAILABLE when the server keeps no jobs), Error when the file does not fit in one frame.
  client::JobInfo job_submit(const client::JobSubmitRequest& request);
  client::JobInfo job_status(const std::string& job_id);
  client::JobList job_list(uint32_t limit = 0, const std::string& after = {});
  client::JobInfo job_cancel(const std::string& job_id);
  // Streams the results: on_chunk for every chunk, the last one with last = true. Returns the lines.
  int64_t job_results(const client::JobResultsRequest& request, const std::function<void(const client::JobResultChunk&)>& on_chunk);
  // Polled (every 100 ms) by run(): when it becomes true the running request is cancelled.
  void set_interrupt(const std::atomic<bool>* interrupt) { interrupt_ = interrupt; }

  // Low level. send_generate returns the request id it chose.
  uint64_t send_generate(const client::GenerateRequest& request);
  void send_cancel(uint64_t request_id);
  void send(const client::ClientMessage& message);
  // The next message from the server, or nullopt when timeout_s passes first (negative: wait as long
  // as it takes). Throws Error when the connection ends or the server sends a malformed frame.
  std::optional<client::ServerMessage> receive(double timeout_s = -1);
  // Like receive, but only for `request_id` (or connection-level messages, id 0); others are kept
  // for later receive calls.
  std::optional<client::ServerMessage> receive_for(uint64_t request_id, double timeout_s = -1);

  static client::GenerateRequest make_request(const RequestOptions& options);

 private:
  void tls_handshake(const std::string& host, std::chrono::steady_clock::time_point deadline);
  struct Impl;
  std::unique_ptr<Impl> impl_;
  const std::atomic<bool>* interrupt_ = nullptr;
};

}  // namespace shardlm::tcp
