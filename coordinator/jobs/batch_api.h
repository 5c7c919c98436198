// The OpenAI Batch API over HTTP, as extra routes of the HTTP server (so the API key applies):
//   POST /v1/files                  multipart/form-data with purpose=batch and file=<JSONL>
//   GET  /v1/files, /v1/files/{id}  file objects
//   GET  /v1/files/{id}/content     the uploaded file, or a batch's output / error file (JSONL)
//   POST /v1/batches                {input_file_id, endpoint, completion_window: "24h", metadata}
//   GET  /v1/batches[?limit&after]  batch objects, newest first
//   GET  /v1/batches/{id}
//   POST /v1/batches/{id}/cancel
// Objects have OpenAI's shapes (object "file" / "batch" / "list"). Errors are OpenAI error bodies;
// an unreadable upload is refused with 400 naming why. Without a job service (no --state-dir) every
// route answers 400 saying how to turn batch jobs on.
#pragma once

#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "coordinator/jobs/job_service.h"

namespace shardlm::http {
class HttpServer;
}

namespace shardlm::jobs {

class BatchApi {
 public:
  explicit BatchApi(JobService* jobs) : jobs_(jobs) {}

  // The route handlers (method, target = path and query, body) -> (status, JSON or JSONL body).
  // They throw ApiException / RequestError for errors (the router turns them into error replies).
  std::pair<int, std::string> files(const std::string& method, const std::string& target, const std::string& body);
  std::pair<int, std::string> batches(const std::string& method, const std::string& target, const std::string& body);

  // Adds /v1/files and /v1/batches to the server. The API must outlive the server's use of it.
  void add_routes(http::HttpServer& server);

 private:
  JobService& jobs();
  JobService* jobs_;
};

nlohmann::json file_json(const FileRecord& file);
nlohmann::json batch_json(const JobRecord& job);

}  // namespace shardlm::jobs
