// deploy/grafana/shardlm.json against the metric catalogue: every metric a panel or variable
// queries is one shardlm exports (histograms as X_bucket/X_sum/X_count, counters as X_total),
// every panel filters on $model_name and uses the ${datasource} variable, and every family of the
// catalogue is shown somewhere. Also checks the PromQL name extractor itself, including that it
// catches unknown names.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "telemetry/catalogue.h"
#include "telemetry/dashboard_lint.h"
#include "telemetry/metrics.h"

namespace shardlm::telemetry {
namespace {

using nlohmann::json;
using Names = std::vector<std::string>;

json load_dashboard() {
  const std::string path = std::string(SHARDLM_SOURCE_DIR) + "/deploy/grafana/shardlm.json";
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  return json::parse(in);
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& l : lines) out += l + "\n";
  return out;
}

TEST(PromqlNames, SkipsFunctionsLabelsStringsAndVariables) {
  EXPECT_EQ(
      promql_metric_names(
          "histogram_quantile(0.99, sum by (le) (rate(shardlm_time_to_first_token_seconds_bucket"
          "{model_name=~\"$model_name\"}[$__rate_interval])))"),
      Names{"shardlm_time_to_first_token_seconds_bucket"});
  EXPECT_EQ(promql_metric_names("sum(rate(a_sum{x=\"rate(b)\"}[5m])) / SUM(rate(a_count[1h30m] "
                                "offset 5m)) * 1e-3 + 0x1F - .5"),
            (Names{"a_sum", "a_count"}));
  EXPECT_EQ(promql_metric_names("sum without (worker, expert) (x_total) > bool on (model_name) "
                                "group_left (layer_type) y and ignoring(le) z unless w"),
            (Names{"x_total", "y", "z", "w"}));
  EXPECT_EQ(promql_metric_names("label_replace(up, \"dst\", \"$1\", \"src\", \"(.*)\") or "
                                "vector(0) or topk(3, m:recorded:rate5m) @ end()"),
            (Names{"up", "m:recorded:rate5m"}));
  EXPECT_EQ(promql_metric_names("$metric + ${other:raw} + foo"), Names{"foo"});
  EXPECT_EQ(promql_metric_names("sum(rate(x[5m:1m])) by (le)"), Names{"x"});
  // An unknown function is reported under its own name (and so fails the catalogue check).
  EXPECT_EQ(promql_metric_names("rates(x[5m])"), (Names{"rates", "x"}));

  const std::vector<PromqlSelector> s =
      promql_selectors("rate(a {model_name=~\"$model_name\", worker=\"1\"}[5m]) + b");
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].name, "a");
  EXPECT_EQ(s[0].matchers, "model_name=~\"$model_name\", worker=\"1\"");
  EXPECT_EQ(s[1].name, "b");
  EXPECT_EQ(s[1].matchers, "");
}

TEST(PromqlNames, RejectsBrokenExpressions) {
  EXPECT_THROW(promql_metric_names("rate(x[5m]"), Error);
  EXPECT_THROW(promql_metric_names("sum(x))"), Error);
  EXPECT_THROW(promql_metric_names("x{a=\"b}"), Error);
  EXPECT_THROW(promql_metric_names("x[5m"), Error);
  EXPECT_THROW(promql_metric_names("x}"), Error);
}

TEST(Dashboard, EveryQueryUsesCatalogueMetrics) {
  const json dashboard = load_dashboard();
  EXPECT_GE(dashboard.at("schemaVersion").get<int>(), 36);
  const std::vector<std::string> problems = dashboard_problems(dashboard);
  EXPECT_TRUE(problems.empty()) << joined(problems);

  // The same check spelled out: names in every panel query, mapped back to their families.
  const std::vector<std::string> series = all_series_names();
  const std::vector<std::string> families = Metrics::catalogue();
  std::set<std::string> used_families;
  int panel_queries = 0;
  for (const DashboardQuery& q : dashboard_queries(dashboard)) {
    panel_queries += q.panel;
    for (const std::string& name : promql_metric_names(q.expr)) {
      EXPECT_TRUE(std::binary_search(series.begin(), series.end(), name))
          << q.where << " uses unknown metric " << name;
      for (const MetricSpec& spec : metric_specs()) {
        for (const std::string& s : series_names(spec)) {
          if (s == name) used_families.insert(std::string(spec.name));
        }
      }
    }
  }
  EXPECT_GT(panel_queries, 30);
  for (const std::string& family : families) {
    EXPECT_TRUE(used_families.count(family)) << "no panel shows " << family;
  }
}

TEST(Dashboard, HasTheReferencePanels) {
  const json dashboard = load_dashboard();
  std::set<std::string> titles;
  std::function<void(const json&)> walk = [&](const json& panels) {
    for (const json& p : panels) {
      titles.insert(p.value("title", ""));
      if (p.contains("panels")) walk(p["panels"]);
    }
  };
  walk(dashboard.at("panels"));
  for (const char* title :
       {"Time to first token", "Inter-token latency", "End-to-end request latency",
        "Token throughput", "Scheduler state", "KV cache usage", "Request prompt length",
        "Request generation length", "Finish reason", "Queue time",
        "Worker compute vs communication", "Straggler skew", "Expert load", "KV blocks per worker",
        "Workers up", "Worker memory"}) {
    EXPECT_TRUE(titles.count(title)) << "missing panel: " << title;
  }
}

// Negative checks: the same dashboard with one query broken in different ways must be rejected.
TEST(Dashboard, UnknownNamesAreReported) {
  const json good = load_dashboard();
  auto first_target = [](json& d) -> json& {
    for (json& p : d["panels"]) {
      if (p.contains("targets")) return p["targets"][0];
    }
    throw std::runtime_error("no panel with targets");
  };
  auto problems_with_expr = [&](const std::string& expr) {
    json d = good;
    first_target(d)["expr"] = expr;
    return joined(dashboard_problems(d));
  };
  const std::string f = "{model_name=~\"$model_name\"}";
  // A made-up family, a histogram without its suffix, a counter without _total, a gauge with one,
  // a metric shardlm does not export, a typo in a function name.
  for (const std::string& bad :
       {"rate(shardlm_no_such_metric_total" + f + "[5m])",
        "shardlm_time_to_first_token_seconds" + f, "rate(shardlm_prompt_tokens" + f + "[5m])",
        "shardlm_num_requests_running_total" + f, "shardlm_request_prompt_tokens_total" + f,
        "up" + f, "rat(shardlm_steps_total" + f + "[5m])"}) {
    EXPECT_NE(problems_with_expr(bad).find("is not a metric shardlm exports"), std::string::npos)
        << bad;
  }
  EXPECT_NE(
      problems_with_expr("sum(shardlm_num_requests_running)").find("not filtered by model_name"),
      std::string::npos);
  EXPECT_NE(problems_with_expr("sum(shardlm_num_requests_running" + f).find("unbalanced"),
            std::string::npos);
  EXPECT_NE(problems_with_expr("vector(1)").find("names no shardlm metric"), std::string::npos);
  EXPECT_TRUE(problems_with_expr("sum(rate(shardlm_steps_total" + f + "[5m]))").empty());

  json d = good;
  d["templating"]["list"][1]["query"]["query"] = "label_values(shardlm_nope, model_name)";
  EXPECT_NE(joined(dashboard_problems(d)).find("variable $model_name: 'shardlm_nope'"),
            std::string::npos);

  d = good;
  first_target(d)["datasource"] = {{"type", "prometheus"}, {"uid", "P1809F7CD0C75ACF3"}};
  EXPECT_NE(joined(dashboard_problems(d)).find("fixed data source"), std::string::npos);

  d = good;
  d["panels"][1]["id"] = d["panels"][2]["id"];
  EXPECT_NE(joined(dashboard_problems(d)).find("repeats a panel id"), std::string::npos);

  EXPECT_FALSE(dashboard_problems(json::array()).empty());
}

}  // namespace
}  // namespace shardlm::telemetry
