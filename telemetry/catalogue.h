// The metric catalogue of shardlm: every Prometheus family the server exports (name, type, labels,
// unit, help) and the bucket boundaries of its histograms. One table, used to register the families
// (telemetry/metrics.cc), to check dashboards (telemetry/dashboard_lint.h) and by the docs test.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace shardlm::telemetry {

enum class MetricType { kCounter, kGauge, kHistogram };

struct MetricSpec {
  std::string_view name;  // full family name, with the shardlm_ prefix; counters end in _total
  MetricType type;
  std::string_view labels;  // labels beyond model_name (which every family has), comma-separated
  std::string_view unit;    // seconds, tokens, bytes, ratio, requests, blocks, ...
  std::string_view help;
  std::span<const double> buckets;  // histograms only: upper bounds, increasing (+Inf implied)
};

// The whole catalogue, in a fixed order.
std::span<const MetricSpec> metric_specs();

// The spec of family NAME; throws Error naming it when it is not in the catalogue.
const MetricSpec& metric_spec(std::string_view name);

// "counter", "gauge" or "histogram".
std::string_view type_name(MetricType type);

// The sample names a family exports in the text format: X for counters and gauges (a counter's
// family name already ends in _total), X_bucket, X_sum and X_count for a histogram X.
std::vector<std::string> series_names(const MetricSpec& spec);

// Every sample name the catalogue exports, sorted.
std::vector<std::string> all_series_names();

}  // namespace shardlm::telemetry
