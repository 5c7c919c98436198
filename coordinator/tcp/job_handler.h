// What the TCP server needs to answer the batch-job messages of the client protocol (proto/client.proto,
// job_submit .. job_results): implemented over the job service (coordinator/jobs/job_protocol.h) and
// given to the server with TcpServer::set_job_handler. The server calls it on a thread of its own,
// never on its I/O thread, so the calls may block on storage. Errors are thrown as RequestError
// (kNotFound for an unknown job, kInvalidRequest for bad input); other exceptions become
// ERROR_INTERNAL.
#pragma once

#include <cstddef>

#include "proto/client.pb.h"

namespace shardlm::tcp {

class JobHandler {
 public:
  virtual ~JobHandler() = default;
  virtual client::JobInfo submit(const client::JobSubmitRequest& request) = 0;
  virtual client::JobInfo status(const client::JobStatusRequest& request) = 0;
  virtual client::JobList list(const client::JobListRequest& request) = 0;
  virtual client::JobInfo cancel(const client::JobCancelRequest& request) = 0;
  // The next chunk of results after `after_line` (the request's own after_line for the first chunk),
  // of about max_bytes (at least one line when there is one); chunk.last when no more follow now.
  virtual client::JobResultChunk results(const client::JobResultsRequest& request, int64_t after_line, size_t max_bytes) = 0;
};

}  // namespace shardlm::tcp
