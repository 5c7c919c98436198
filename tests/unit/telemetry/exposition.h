// Test helper: a small parser of the Prometheus text exposition format, to look samples up by
// name and exact label set.
#pragma once

#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace shardlm::telemetry::test {

using LabelSet = std::map<std::string, std::string>;

struct Sample {
  std::string name;
  LabelSet labels;
  double value = NAN;
};

// Parses every sample line of TEXT (comment lines skipped). Returns nullopt on a malformed line.
inline std::optional<std::vector<Sample>> parse_exposition(const std::string& text) {
  std::vector<Sample> out;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    Sample s;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') s.name += line[i++];
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        std::string key, value;
        while (i < line.size() && line[i] != '=') key += line[i++];
        if (i + 1 >= line.size() || line[i + 1] != '"') return std::nullopt;
        i += 2;
        while (i < line.size() && line[i] != '"') {
          if (line[i] == '\\' && i + 1 < line.size()) {
            ++i;
            value += line[i] == 'n' ? '\n' : line[i];
          } else {
            value += line[i];
          }
          ++i;
        }
        if (i >= line.size()) return std::nullopt;
        ++i;  // closing quote
        s.labels[key] = value;
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (i >= line.size()) return std::nullopt;
      ++i;  // }
    }
    if (i >= line.size() || line[i] != ' ') return std::nullopt;
    const std::string value = line.substr(i + 1);
    if (value == "+Inf") {
      s.value = INFINITY;
    } else {
      try {
        s.value = std::stod(value);
      } catch (...) {
        return std::nullopt;
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

// The value of sample NAME{LABELS} (exact label set) in TEXT, or nullopt when absent.
inline std::optional<double> sample_value(const std::string& text, const std::string& name,
                                          const LabelSet& labels) {
  auto samples = parse_exposition(text);
  if (!samples) return std::nullopt;
  for (const Sample& s : *samples) {
    if (s.name == name && s.labels == labels) return s.value;
  }
  return std::nullopt;
}

// The family names declared by "# TYPE" lines of TEXT.
inline std::set<std::string> declared_families(const std::string& text) {
  std::set<std::string> out;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("# TYPE ", 0) != 0) continue;
    const std::string rest = line.substr(7);
    out.insert(rest.substr(0, rest.find(' ')));
  }
  return out;
}

}  // namespace shardlm::telemetry::test
