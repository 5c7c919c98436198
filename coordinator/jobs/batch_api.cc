#include "coordinator/jobs/batch_api.h"

#include <algorithm>
#include <map>

#include "coordinator/http/api_error.h"
#include "coordinator/http/http_server.h"
#include "coordinator/http/openai_request.h"
#include "coordinator/http/openai_response.h"
#include "coordinator/jobs/batch_file.h"
#include "coordinator/jobs/multipart.h"
#include "coordinator/request_error.h"

namespace shardlm::jobs {
namespace {

using nlohmann::json;
using http::fail_param;

constexpr int kDefaultListLimit = 20;
constexpr int kMaxListLimit = 100;
constexpr size_t kMaxMetadataKeys = 16;

json time_or_null(int64_t t) { return t > 0 ? json(t) : json(nullptr); }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i] == '+' ? ' ' : s[i]);
    }
  }
  return out;
}

struct Target {
  std::vector<std::string> segments;  // path segments after the route's prefix
  std::map<std::string, std::string> query;
};

// "/v1/batches/ID/cancel?x=1" with prefix "/v1/batches" -> {"ID", "cancel"}, {x: 1}. A path that does
// not continue the prefix at a '/' gets a 404.
Target split_target(const std::string& method, const std::string& target, const std::string& prefix) {
  Target t;
  const size_t q = target.find('?');
  const std::string path = target.substr(0, q);
  if (path.compare(0, prefix.size(), prefix) != 0 || (path.size() > prefix.size() && path[prefix.size()] != '/')) {
    throw http::ApiException(http::not_found_route(method, path));
  }
  size_t i = prefix.size();
  while (i < path.size()) {
    ++i;  // '/'
    const size_t end = std::min(path.find('/', i), path.size());
    if (end > i) t.segments.push_back(percent_decode(std::string_view(path).substr(i, end - i)));
    i = end;
  }
  if (q != std::string::npos) {
    std::string_view rest = std::string_view(target).substr(q + 1);
    while (!rest.empty()) {
      const size_t amp = rest.find('&');
      std::string_view pair = rest.substr(0, amp);
      const size_t eq = pair.find('=');
      t.query[percent_decode(pair.substr(0, eq))] = eq == std::string_view::npos ? "" : percent_decode(pair.substr(eq + 1));
      rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    }
  }
  return t;
}

// A 405 with the methods the path takes (the Allow header).
[[noreturn]] void not_allowed(const std::string& method, const std::string& target, const char* allowed) {
  http::ApiError e = http::method_not_allowed(method, target.substr(0, target.find('?')));
  e.allow = allowed;
  throw http::ApiException(e);
}

bool reads(const std::string& method) { return method == "GET" || method == "HEAD"; }

// The query's limit, between 1 and max_limit (default_limit when absent).
int list_limit(const Target& t, int default_limit = kDefaultListLimit, int max_limit = kMaxListLimit) {
  const auto it = t.query.find("limit");
  if (it == t.query.end() || it->second.empty()) return default_limit;
  int limit = 0;
  try {
    size_t used = 0;
    limit = std::stoi(it->second, &used);
    if (used != it->second.size()) throw std::invalid_argument("trailing");
  } catch (const std::out_of_range&) {
    fail_param("limit", "'limit' must be in 1..{} (got {})", max_limit, it->second);
  } catch (const std::exception&) {
    fail_param("limit", "'limit' must be an integer (got '{}')", it->second);
  }
  if (limit < 1 || limit > max_limit) fail_param("limit", "'limit' must be in 1..{} (got {})", max_limit, limit);
  return limit;
}

// GET /v1/files as OpenAI pages it: order (desc by default: newest first), after (a file id: the
// files that follow it in that order), limit (1..10000, default 10000).
json file_list(JobService& js, const Target& t) {
  const auto purpose = t.query.find("purpose");
  std::vector<FileRecord> all = js.files(purpose == t.query.end() ? "" : purpose->second);
  const auto order = t.query.find("order");
  if (order != t.query.end() && order->second != "desc") {
    if (order->second != "asc") fail_param("order", "'order' must be 'asc' or 'desc' (got '{}')", order->second);
    std::reverse(all.begin(), all.end());
  }
  size_t begin = 0;
  if (const auto after = t.query.find("after"); after != t.query.end() && !after->second.empty()) {
    const auto it = std::find_if(all.begin(), all.end(), [&](const FileRecord& f) { return f.id == after->second; });
    if (it == all.end()) fail_param("after", "'after' names no file in this list: {}", after->second);
    begin = static_cast<size_t>(it - all.begin()) + 1;
  }
  const size_t end = std::min(all.size(), begin + static_cast<size_t>(list_limit(t, 10000, 10000)));
  json data = json::array();
  for (size_t i = begin; i < end; ++i) data.push_back(file_json(all[i]));
  return {{"object", "list"},
          {"data", std::move(data)},
          {"first_id", begin < end ? json(all[begin].id) : json(nullptr)},
          {"last_id", begin < end ? json(all[end - 1].id) : json(nullptr)},
          {"has_more", end < all.size()}};
}

json parse_metadata(const json& body) {
  const auto it = body.find("metadata");
  if (it == body.end() || it->is_null()) return json::object();
  if (!it->is_object()) fail_param("metadata", "'metadata' must be an object of strings");
  if (it->size() > kMaxMetadataKeys) fail_param("metadata", "'metadata' holds {} keys; at most {} are allowed", it->size(), kMaxMetadataKeys);
  for (const auto& [key, value] : it->items()) {
    if (key.size() > 64) fail_param("metadata", "metadata key '{}' is longer than 64 characters", key);
    if (!value.is_string()) fail_param("metadata", "metadata value of '{}' must be a string", key);
    if (value.get<std::string>().size() > 512) fail_param("metadata", "metadata value of '{}' is longer than 512 characters", key);
  }
  return *it;
}

std::string required_string(const json& body, const char* key) {
  const auto it = body.find(key);
  if (it == body.end() || it->is_null()) fail_param(key, "'{}' is required", key);
  if (!it->is_string()) fail_param(key, "Invalid type for '{}': expected a string", key);
  return it->get<std::string>();
}

}  // namespace

json file_json(const FileRecord& f) {
  return {{"id", f.id},
          {"object", "file"},
          {"bytes", f.bytes},
          {"created_at", f.created_at},
          {"expires_at", nullptr},
          {"filename", f.filename},
          {"purpose", f.purpose},
          {"status", "processed"},
          {"status_details", nullptr}};
}

json batch_json(const JobRecord& j) {
  return {{"id", j.id},
          {"object", "batch"},
          {"endpoint", j.endpoint},
          {"errors", j.error.empty() ? json(nullptr)
                                     : json{{"object", "list"}, {"data", json::array({{{"code", "failed"}, {"message", j.error}}})}}},
          {"input_file_id", j.input_file_id},
          {"completion_window", j.completion_window},
          {"status", job_state_name(j.state)},
          {"output_file_id", j.output_file_id.empty() ? json(nullptr) : json(j.output_file_id)},
          {"error_file_id", j.error_file_id.empty() ? json(nullptr) : json(j.error_file_id)},
          {"created_at", j.created_at},
          {"in_progress_at", time_or_null(j.in_progress_at)},
          {"expires_at", nullptr},
          {"finalizing_at", time_or_null(j.finalizing_at)},
          {"completed_at", time_or_null(j.completed_at)},
          {"failed_at", time_or_null(j.failed_at)},
          {"expired_at", nullptr},
          {"cancelling_at", time_or_null(j.cancelling_at)},
          {"cancelled_at", time_or_null(j.cancelled_at)},
          {"request_counts", {{"total", j.total}, {"completed", j.completed}, {"failed", j.failed}}},
          {"metadata", j.metadata}};
}

JobService& BatchApi::jobs() {
  if (!jobs_) {
    http::ApiError e;
    e.status = 400;
    e.type = "invalid_request_error";
    e.code = "batch_jobs_disabled";
    e.message = "Batch jobs are off on this server: start `shardlm serve` with --state-dir DIR (where jobs are kept)";
    throw http::ApiException(e);
  }
  return *jobs_;
}

std::pair<int, std::string> BatchApi::files(const std::string& method, const std::string& target, const std::string& body) {
  const Target t = split_target(method, target, "/v1/files");
  JobService& js = jobs();
  if (t.segments.empty()) {
    if (reads(method)) return {200, http::dump_json(file_list(js, t))};
    if (method != "POST") not_allowed(method, target, "GET, POST");
    std::vector<FormPart> parts;
    try {
      parts = parse_multipart(body);
    } catch (const Error& e) {
      fail_param("", "POST /v1/files takes multipart/form-data with the fields 'purpose' and 'file': {}", e.what());
    }
    const FormPart* purpose = find_part(parts, "purpose");
    if (!purpose) fail_param("purpose", "'purpose' is required (use 'batch')");
    const FormPart* file = find_part(parts, "file");
    if (!file) fail_param("file", "'file' is required: the JSONL file of requests");
    try {
      const FileRecord f = js.upload(file->filename.value_or("batch.jsonl"), purpose->data, file->data);
      return {200, http::dump_json(file_json(f))};
    } catch (const RequestError& e) {
      if (e.code() != RequestErrorCode::kInvalidRequest) throw;
      fail_param(purpose->data == "batch" ? "file" : "purpose", "{}", e.what());
    }
  }
  const std::string& id = t.segments[0];
  if (t.segments.size() == 1) {
    if (method == "DELETE") {
      js.delete_file(id);
      return {200, http::dump_json({{"id", id}, {"object", "file"}, {"deleted", true}})};
    }
    if (!reads(method)) not_allowed(method, target, "GET, DELETE");
    return {200, http::dump_json(file_json(js.file(id)))};
  }
  if (t.segments.size() == 2 && t.segments[1] == "content") {
    if (!reads(method)) not_allowed(method, target, "GET");
    return {200, js.file_content(id)};
  }
  throw http::ApiException(http::not_found_route(method, target.substr(0, target.find('?'))));
}

std::pair<int, std::string> BatchApi::batches(const std::string& method, const std::string& target, const std::string& body) {
  const Target t = split_target(method, target, "/v1/batches");
  JobService& js = jobs();
  if (t.segments.empty()) {
    if (reads(method)) {
      const auto after = t.query.find("after");
      bool has_more = false;
      const int limit = list_limit(t);
      std::vector<JobRecord> list;
      try {
        list = js.list(after == t.query.end() ? "" : after->second, limit, &has_more);
      } catch (const RequestError& e) {
        if (e.code() != RequestErrorCode::kInvalidRequest) throw;
        fail_param("after", "{}", e.what());
      }
      json data = json::array();
      for (const JobRecord& j : list) data.push_back(batch_json(j));
      return {200, http::dump_json({{"object", "list"},
                                    {"data", std::move(data)},
                                    {"first_id", list.empty() ? json(nullptr) : json(list.front().id)},
                                    {"last_id", list.empty() ? json(nullptr) : json(list.back().id)},
                                    {"has_more", has_more}})};
    }
    if (method != "POST") not_allowed(method, target, "GET, POST");
    const json b = http::parse_json_body(body);
    const std::string input = required_string(b, "input_file_id");
    const std::string endpoint = required_string(b, "endpoint");
    if (!is_batch_endpoint(endpoint)) {
      fail_param("endpoint", "'endpoint' is '{}'; supported: {} and {}", endpoint, kChatEndpoint, kCompletionsEndpoint);
    }
    const std::string window = required_string(b, "completion_window");
    if (window != "24h") fail_param("completion_window", "'completion_window' must be '24h' (got '{}')", window);
    const json metadata = parse_metadata(b);
    return {200, http::dump_json(batch_json(js.create(input, endpoint, window, metadata)))};
  }
  const std::string& id = t.segments[0];
  if (t.segments.size() == 1) {
    if (!reads(method)) not_allowed(method, target, "GET");
    return {200, http::dump_json(batch_json(js.job(id)))};
  }
  if (t.segments.size() == 2 && t.segments[1] == "cancel") {
    if (method != "POST") not_allowed(method, target, "POST");
    return {200, http::dump_json(batch_json(js.cancel(id)))};
  }
  throw http::ApiException(http::not_found_route(method, target.substr(0, target.find('?'))));
}

void BatchApi::add_routes(http::HttpServer& server) {
  server.add_route("/v1/files", [this](const std::string& m, const std::string& t, const std::string& b) { return files(m, t, b); });
  server.add_route("/v1/batches", [this](const std::string& m, const std::string& t, const std::string& b) { return batches(m, t, b); });
}

}  // namespace shardlm::jobs
