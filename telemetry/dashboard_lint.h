// Checks a Grafana dashboard (deploy/grafana/shardlm.json) against the metric catalogue: pulls the
// metric names out of every PromQL query and reports names that shardlm does not export, queries
// that do not filter on model_name, and panels without a query or with a fixed data source.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace shardlm::telemetry {

// One vector selector of a PromQL expression: the metric name and the text between its braces
// ("" without braces). An unknown function call `f(...)` is reported as a selector named f.
struct PromqlSelector {
  std::string name;
  std::string matchers;
};

// The selectors of EXPR, in order. Skips functions, aggregations, keywords, label lists of
// by/without/on/ignoring/group_left/group_right, strings, numbers, durations, ranges and Grafana
// variables ($x, ${x}). Throws Error on an unterminated string or unbalanced brackets.
std::vector<PromqlSelector> promql_selectors(std::string_view expr);

// The metric names of promql_selectors(EXPR).
std::vector<std::string> promql_metric_names(std::string_view expr);

// A PromQL query found in a dashboard; WHERE says where ('panel "TTFT" (id 2), target A').
struct DashboardQuery {
  std::string where;
  std::string expr;
  bool panel = true;  // false for a templating variable's query (label_values(...) etc.)
};

// Every query of the dashboard: panel targets (rows' nested panels included) and the PromQL part
// of query variables (label_values(SELECTOR, label), query_result(EXPR)).
std::vector<DashboardQuery> dashboard_queries(const nlohmann::json& dashboard);

// Every problem of the dashboard, one message each; empty when it is consistent with the catalogue.
std::vector<std::string> dashboard_problems(const nlohmann::json& dashboard);

}  // namespace shardlm::telemetry
