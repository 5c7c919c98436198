// The metric catalogue is well formed (prefix, _total on counters only, increasing buckets, label
// names) and docs/metrics.md documents exactly it: one table row per family with its type and
// labels, and no shardlm_ name in the text that the server does not export.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "common/error.h"
#include "telemetry/catalogue.h"
#include "telemetry/metrics.h"

namespace shardlm::telemetry {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string trim(std::string s) {
  const size_t a = s.find_first_not_of(" `");
  const size_t b = s.find_last_not_of(" `");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

TEST(Catalogue, IsWellFormed) {
  const std::regex name_re("shardlm_[a-z][a-z0-9_]*");
  const std::regex label_re("[a-z][a-z0-9_]*");
  std::set<std::string> names;
  for (const MetricSpec& spec : metric_specs()) {
    const std::string name(spec.name);
    EXPECT_TRUE(std::regex_match(name, name_re)) << name;
    EXPECT_TRUE(names.insert(name).second) << "repeated: " << name;
    EXPECT_EQ(spec.type == MetricType::kCounter, ends_with(name, "_total")) << name;
    EXPECT_FALSE(spec.help.empty()) << name;
    EXPECT_FALSE(spec.unit.empty()) << name;
    if (spec.type == MetricType::kHistogram) {
      ASSERT_FALSE(spec.buckets.empty()) << name;
      for (size_t i = 1; i < spec.buckets.size(); ++i) {
        EXPECT_LT(spec.buckets[i - 1], spec.buckets[i]) << name;
      }
      EXPECT_GT(spec.buckets.front(), 0) << name;
    } else {
      EXPECT_TRUE(spec.buckets.empty()) << name;
    }
    if (!spec.labels.empty()) {
      std::stringstream labels{std::string(spec.labels)};
      std::string label;
      while (std::getline(labels, label, ',')) {
        EXPECT_TRUE(std::regex_match(label, label_re)) << name << ": '" << label << "'";
        EXPECT_NE(label, "model_name") << name;
        EXPECT_NE(label, "le") << name;
      }
    }
  }
  const std::vector<std::string> catalogue = Metrics::catalogue();
  EXPECT_EQ(std::set<std::string>(catalogue.begin(), catalogue.end()), names);
  EXPECT_EQ(catalogue.size(), 31u);
  EXPECT_EQ(metric_spec("shardlm_request_prompt_tokens").buckets.back(), 262144);
  EXPECT_THROW(metric_spec("shardlm_nope"), Error);
}

TEST(Catalogue, DocsListEveryFamilyWithTypeAndLabels) {
  const std::string doc = read_file(std::string(SHARDLM_SOURCE_DIR) + "/docs/metrics.md");
  std::map<std::string, std::pair<std::string, std::string>> rows;  // name -> (type, labels)
  std::istringstream lines(doc);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("| `shardlm_", 0) != 0) continue;
    std::vector<std::string> cells;
    std::stringstream cellstream(line.substr(1));
    std::string cell;
    while (std::getline(cellstream, cell, '|')) cells.push_back(cell);
    ASSERT_GE(cells.size(), 5u) << line;
    EXPECT_TRUE(rows.emplace(trim(cells[0]), std::pair{trim(cells[1]), cells[2]}).second)
        << "documented twice: " << cells[0];
  }
  for (const MetricSpec& spec : metric_specs()) {
    const std::string name(spec.name);
    auto it = rows.find(name);
    if (it == rows.end()) {
      ADD_FAILURE() << "docs/metrics.md has no row for " << name;
      continue;
    }
    EXPECT_EQ(it->second.first, type_name(spec.type)) << name;
    std::string labels = "model_name";
    if (!spec.labels.empty()) labels += "," + std::string(spec.labels);
    std::string documented;
    for (char c : it->second.second) {
      if (c != ' ' && c != '`') documented += c;
    }
    EXPECT_EQ(documented, labels) << name;
    rows.erase(it);
  }
  for (const auto& [name, row] : rows)
    ADD_FAILURE() << "docs/metrics.md documents unknown " << name;

  // Any other shardlm_ name in the text (examples, prose) is one the server exports.
  const std::vector<std::string> series = all_series_names();
  const std::vector<std::string> families = Metrics::catalogue();
  const std::regex any_name("shardlm_[a-z0-9_]+");
  for (auto m = std::sregex_iterator(doc.begin(), doc.end(), any_name); m != std::sregex_iterator();
       ++m) {
    const std::string name = m->str();
    EXPECT_TRUE(std::binary_search(series.begin(), series.end(), name) ||
                std::find(families.begin(), families.end(), name) != families.end())
        << "docs/metrics.md mentions " << name;
  }
}

}  // namespace
}  // namespace shardlm::telemetry
