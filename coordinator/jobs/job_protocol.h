// The batch-job messages of the TCP client protocol (proto/client.proto: job_submit, job_status,
// job_list, job_cancel, job_results) answered by the job service: the TcpServer's JobHandler.
#pragma once

#include "coordinator/jobs/job_service.h"
#include "coordinator/tcp/job_handler.h"

namespace shardlm::jobs {

client::JobInfo to_proto(const JobRecord& job);

class ProtocolJobHandler final : public tcp::JobHandler {
 public:
  explicit ProtocolJobHandler(JobService& jobs) : jobs_(jobs) {}

  client::JobInfo submit(const client::JobSubmitRequest& request) override;
  client::JobInfo status(const client::JobStatusRequest& request) override;
  client::JobList list(const client::JobListRequest& request) override;
  client::JobInfo cancel(const client::JobCancelRequest& request) override;
  client::JobResultChunk results(const client::JobResultsRequest& request, int64_t after_line, size_t max_bytes) override;

 private:
  JobService& jobs_;
};

}  // namespace shardlm::jobs
