#include "telemetry/dashboard_lint.h"

#include <algorithm>
#include <cctype>
#include <set>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "telemetry/catalogue.h"

namespace shardlm::telemetry {
namespace {

using nlohmann::json;

// PromQL functions (https://prometheus.io/docs/prometheus/latest/querying/functions/).
const std::set<std::string, std::less<>> kFunctions = {"abs",
                                                       "absent",
                                                       "absent_over_time",
                                                       "acos",
                                                       "acosh",
                                                       "asin",
                                                       "asinh",
                                                       "atan",
                                                       "atanh",
                                                       "avg_over_time",
                                                       "ceil",
                                                       "changes",
                                                       "clamp",
                                                       "clamp_max",
                                                       "clamp_min",
                                                       "cos",
                                                       "cosh",
                                                       "count_over_time",
                                                       "day_of_month",
                                                       "day_of_week",
                                                       "day_of_year",
                                                       "days_in_month",
                                                       "deg",
                                                       "delta",
                                                       "deriv",
                                                       "double_exponential_smoothing",
                                                       "exp",
                                                       "floor",
                                                       "histogram_avg",
                                                       "histogram_count",
                                                       "histogram_fraction",
                                                       "histogram_quantile",
                                                       "histogram_stddev",
                                                       "histogram_stdvar",
                                                       "histogram_sum",
                                                       "holt_winters",
                                                       "hour",
                                                       "idelta",
                                                       "increase",
                                                       "irate",
                                                       "label_join",
                                                       "label_replace",
                                                       "last_over_time",
                                                       "ln",
                                                       "log10",
                                                       "log2",
                                                       "mad_over_time",
                                                       "max_over_time",
                                                       "min_over_time",
                                                       "minute",
                                                       "month",
                                                       "pi",
                                                       "predict_linear",
                                                       "present_over_time",
                                                       "quantile_over_time",
                                                       "rad",
                                                       "rate",
                                                       "resets",
                                                       "round",
                                                       "scalar",
                                                       "sgn",
                                                       "sin",
                                                       "sinh",
                                                       "sort",
                                                       "sort_by_label",
                                                       "sort_by_label_desc",
                                                       "sort_desc",
                                                       "sqrt",
                                                       "stddev_over_time",
                                                       "stdvar_over_time",
                                                       "sum_over_time",
                                                       "tan",
                                                       "tanh",
                                                       "time",
                                                       "timestamp",
                                                       "vector",
                                                       "year"};
const std::set<std::string, std::less<>> kAggregations = {
    "avg", "bottomk", "count",    "count_values", "group",  "limit_ratio", "limitk",
    "max", "min",     "quantile", "stddev",       "stdvar", "sum",         "topk"};
// Keywords followed by a parenthesised label list.
const std::set<std::string, std::less<>> kLabelListKeywords = {
    "by", "without", "on", "ignoring", "group_left", "group_right"};
const std::set<std::string, std::less<>> kKeywords = {"and",   "or",  "unless", "bool",  "offset",
                                                      "atan2", "inf", "nan",    "start", "end"};

bool ident_start(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':';
}
bool ident_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':';
}
std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Index just after the string literal that starts at I.
size_t skip_string(std::string_view expr, size_t i) {
  const char quote = expr[i++];
  while (i < expr.size()) {
    if (expr[i] == '\\' && quote != '`') {
      i += 2;
    } else if (expr[i++] == quote) {
      return i;
    }
  }
  fail("unterminated string in PromQL '{}'", expr);
}

// Index just after the bracket that closes the one at I (strings inside are skipped).
size_t skip_group(std::string_view expr, size_t i) {
  const char open = expr[i];
  const char close = open == '{' ? '}' : open == '[' ? ']' : ')';
  int depth = 0;
  while (i < expr.size()) {
    const char c = expr[i];
    if (c == '"' || c == '\'' || c == '`') {
      i = skip_string(expr, i);
      continue;
    }
    if (c == open) ++depth;
    if (c == close && --depth == 0) return i + 1;
    ++i;
  }
  fail("unbalanced '{}' in PromQL '{}'", open, expr);
}

size_t skip_space(std::string_view expr, size_t i) {
  while (i < expr.size() && std::isspace(static_cast<unsigned char>(expr[i]))) ++i;
  return i;
}

// Splits ARGS (the text between a call's parentheses) at top-level commas.
std::vector<std::string> split_arguments(std::string_view args) {
  std::vector<std::string> out;
  size_t start = 0, i = 0;
  while (i < args.size()) {
    const char c = args[i];
    if (c == '"' || c == '\'' || c == '`') {
      i = skip_string(args, i);
    } else if (c == '(' || c == '{' || c == '[') {
      i = skip_group(args, i);
    } else if (c == ',') {
      out.emplace_back(args.substr(start, i - start));
      start = ++i;
    } else {
      ++i;
    }
  }
  out.emplace_back(args.substr(start));
  return out;
}

// The PromQL inside a Grafana Prometheus variable query, or "" when it has none.
std::string variable_promql(std::string_view query) {
  const size_t i = skip_space(query, 0);
  size_t j = i;
  while (j < query.size() && ident_char(query[j])) ++j;
  const std::string_view fn = query.substr(i, j - i);
  j = skip_space(query, j);
  if (j >= query.size() || query[j] != '(') return "";
  const size_t end = skip_group(query, j);
  const std::string_view inside = query.substr(j + 1, end - j - 2);
  if (fn == "query_result") return std::string(inside);
  if (fn == "label_values") {
    std::vector<std::string> args = split_arguments(inside);
    if (args.size() == 2) return args[0];  // label_values(SELECTOR, label)
  }
  return "";  // label_values(label), label_names(), metrics(regex)
}

std::string describe_panel(const json& panel) {
  const std::string title = panel.value("title", std::string());
  std::string out = fmt::format("panel \"{}\"", title);
  if (panel.contains("id") && panel["id"].is_number_integer()) {
    out += fmt::format(" (id {})", panel["id"].get<int64_t>());
  }
  return out;
}

void collect_panel_queries(const json& panels, std::vector<DashboardQuery>& out) {
  if (!panels.is_array()) return;
  for (const json& panel : panels) {
    if (!panel.is_object()) continue;
    if (panel.contains("panels")) collect_panel_queries(panel["panels"], out);
    if (!panel.contains("targets") || !panel["targets"].is_array()) continue;
    for (const json& target : panel["targets"]) {
      if (!target.is_object() || !target.contains("expr") || !target["expr"].is_string()) continue;
      out.push_back({fmt::format("{}, target {}", describe_panel(panel),
                                 target.value("refId", std::string("?"))),
                     target["expr"].get<std::string>(), true});
    }
  }
}

bool uses_datasource_variable(const json& node) {
  return node.contains("datasource") && node["datasource"].is_object() &&
         node["datasource"].value("uid", std::string()) == "${datasource}";
}

void check_panels(const json& panels, std::set<int64_t>& ids, std::vector<std::string>& problems) {
  for (const json& panel : panels) {
    if (!panel.is_object()) {
      problems.push_back("a panel is not a JSON object");
      continue;
    }
    const std::string where = describe_panel(panel);
    if (!panel.contains("id") || !panel["id"].is_number_integer()) {
      problems.push_back(where + " has no integer id");
    } else if (!ids.insert(panel["id"].get<int64_t>()).second) {
      problems.push_back(where + " repeats a panel id");
    }
    if (!panel.contains("gridPos") || !panel["gridPos"].is_object()) {
      problems.push_back(where + " has no gridPos");
    }
    if (panel.contains("panels") && panel["panels"].is_array()) {
      check_panels(panel["panels"], ids, problems);
    }
    if (panel.value("type", std::string()) == "row") continue;
    if (!uses_datasource_variable(panel)) {
      problems.push_back(where + " does not use the data source variable ${datasource}");
    }
    const json* targets = panel.contains("targets") ? &panel["targets"] : nullptr;
    if (targets == nullptr || !targets->is_array() || targets->empty()) {
      problems.push_back(where + " has no query");
      continue;
    }
    for (const json& target : *targets) {
      if (!target.is_object() || !target.contains("expr") || !target["expr"].is_string() ||
          target["expr"].get<std::string>().empty()) {
        problems.push_back(where + " has a target without a PromQL expr");
      } else if (target.contains("datasource") && !uses_datasource_variable(target)) {
        problems.push_back(where + " has a target with a fixed data source");
      }
    }
  }
}

}  // namespace

std::vector<PromqlSelector> promql_selectors(std::string_view expr) {
  std::vector<PromqlSelector> out;
  int parens = 0;
  bool after_selector = false;  // the last token was a selector's metric name
  size_t i = 0;
  while (i < expr.size()) {
    const char c = expr[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
      continue;
    }
    const bool attach = after_selector;
    after_selector = false;
    if (c == '"' || c == '\'' || c == '`') {
      i = skip_string(expr, i);
    } else if (c == '{') {
      const size_t end = skip_group(expr, i);
      if (attach) out.back().matchers = std::string(expr.substr(i + 1, end - i - 2));
      i = end;
    } else if (c == '[') {
      i = skip_group(expr, i);
    } else if (c == '}' || c == ']') {
      fail("unbalanced '{}' in PromQL '{}'", c, expr);
    } else if (c == '$') {  // Grafana variable: $name or ${name...}
      ++i;
      if (i < expr.size() && expr[i] == '{') {
        i = skip_group(expr, i);
      } else {
        while (i < expr.size() && ident_char(expr[i])) ++i;
      }
    } else if (std::isdigit(static_cast<unsigned char>(c)) ||
               (c == '.' && i + 1 < expr.size() &&
                std::isdigit(static_cast<unsigned char>(expr[i + 1])))) {
      // Number or duration: 0.99, 1e-3, 0x1f, 5m, 1h30m.
      ++i;
      while (i < expr.size()) {
        const char d = expr[i];
        const bool exponent_sign =
            (d == '+' || d == '-') && (expr[i - 1] == 'e' || expr[i - 1] == 'E');
        if (!std::isalnum(static_cast<unsigned char>(d)) && d != '.' && d != '_' &&
            !exponent_sign) {
          break;
        }
        ++i;
      }
    } else if (ident_start(c)) {
      const size_t start = i;
      while (i < expr.size() && ident_char(expr[i])) ++i;
      const std::string_view word = expr.substr(start, i - start);
      const std::string key = lower(word);
      const size_t next = skip_space(expr, i);
      const bool call = next < expr.size() && expr[next] == '(';
      if (kLabelListKeywords.count(key)) {
        if (call) i = skip_group(expr, next);
      } else if (kKeywords.count(key) || kAggregations.count(key) ||
                 (call && kFunctions.count(key))) {
        // not a metric
      } else {
        out.push_back({std::string(word), ""});
        after_selector = !call;
      }
    } else if (c == '(') {
      ++parens;
      ++i;
    } else if (c == ')') {
      if (--parens < 0) fail("unbalanced ')' in PromQL '{}'", expr);
      ++i;
    } else {
      ++i;  // operators, commas, @
    }
  }
  if (parens != 0) fail("unbalanced '(' in PromQL '{}'", expr);
  return out;
}

std::vector<std::string> promql_metric_names(std::string_view expr) {
  std::vector<std::string> names;
  for (PromqlSelector& s : promql_selectors(expr)) names.push_back(std::move(s.name));
  return names;
}

std::vector<DashboardQuery> dashboard_queries(const json& dashboard) {
  std::vector<DashboardQuery> out;
  if (!dashboard.is_object()) return out;
  if (dashboard.contains("panels")) collect_panel_queries(dashboard["panels"], out);
  if (dashboard.contains("templating") && dashboard["templating"].is_object() &&
      dashboard["templating"].contains("list") && dashboard["templating"]["list"].is_array()) {
    for (const json& variable : dashboard["templating"]["list"]) {
      if (!variable.is_object() || variable.value("type", std::string()) != "query") continue;
      std::string query;
      if (variable.contains("query") && variable["query"].is_string()) {
        query = variable["query"].get<std::string>();
      } else if (variable.contains("query") && variable["query"].is_object() &&
                 variable["query"].contains("query") && variable["query"]["query"].is_string()) {
        query = variable["query"]["query"].get<std::string>();
      }
      out.push_back({fmt::format("variable ${}", variable.value("name", std::string("?"))),
                     variable_promql(query), false});
    }
  }
  return out;
}

std::vector<std::string> dashboard_problems(const json& dashboard) {
  std::vector<std::string> problems;
  if (!dashboard.is_object() || !dashboard.contains("panels") || !dashboard["panels"].is_array()) {
    problems.push_back("the dashboard is not a JSON object with a \"panels\" array");
    return problems;
  }
  std::set<int64_t> ids;
  check_panels(dashboard["panels"], ids, problems);

  std::set<std::string, std::less<>> variables;
  if (dashboard.contains("templating") && dashboard["templating"].contains("list") &&
      dashboard["templating"]["list"].is_array()) {
    for (const json& v : dashboard["templating"]["list"]) {
      if (v.is_object()) variables.insert(v.value("name", std::string()));
    }
  }
  for (const char* required : {"datasource", "model_name"}) {
    if (!variables.count(required)) {
      problems.push_back(fmt::format("the dashboard has no ${} template variable", required));
    }
  }

  const std::vector<std::string> series = all_series_names();
  for (const DashboardQuery& q : dashboard_queries(dashboard)) {
    std::vector<PromqlSelector> selectors;
    try {
      selectors = promql_selectors(q.expr);
    } catch (const Error& e) {
      problems.push_back(fmt::format("{}: {}", q.where, e.what()));
      continue;
    }
    if (selectors.empty()) {
      problems.push_back(fmt::format("{}: query '{}' names no shardlm metric", q.where, q.expr));
    }
    for (const PromqlSelector& s : selectors) {
      if (!std::binary_search(series.begin(), series.end(), s.name)) {
        problems.push_back(
            fmt::format("{}: '{}' is not a metric shardlm exports", q.where, s.name));
      } else if (q.panel && s.matchers.find("model_name") == std::string::npos) {
        problems.push_back(fmt::format("{}: '{}' is not filtered by model_name=~\"$model_name\"",
                                       q.where, s.name));
      }
    }
  }
  return problems;
}

}  // namespace shardlm::telemetry
