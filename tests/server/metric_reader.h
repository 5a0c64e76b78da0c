// Reads series back from what a prometheus::Collectable collected, for the
// coordinator's metrics tests.
#ifndef DFV_TESTS_SERVER_METRIC_READER_H_
#define DFV_TESTS_SERVER_METRIC_READER_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "prometheus/metric_family.h"
#include "prometheus/metric_type.h"

namespace dfv::server::testing {

// The series of family `name` whose labels include every pair of `labels`
// (the first such), or nullptr.
inline const prometheus::ClientMetric* FindSeries(
    const std::vector<prometheus::MetricFamily>& families, const std::string& name,
    const std::map<std::string, std::string>& labels, prometheus::MetricType* type = nullptr) {
  for (const prometheus::MetricFamily& family : families) {
    if (family.name != name) continue;
    for (const prometheus::ClientMetric& metric : family.metric) {
      size_t matched = 0;
      for (const prometheus::ClientMetric::Label& label : metric.label) {
        auto it = labels.find(label.name);
        if (it != labels.end() && it->second == label.value) ++matched;
      }
      if (matched == labels.size()) {
        if (type != nullptr) *type = family.type;
        return &metric;
      }
    }
  }
  return nullptr;
}

// A counter's or gauge's value, or a histogram's sample count; nullopt when
// there is no such series.
inline std::optional<double> SeriesValue(const std::vector<prometheus::MetricFamily>& families,
                                         const std::string& name,
                                         const std::map<std::string, std::string>& labels = {}) {
  prometheus::MetricType type;
  const prometheus::ClientMetric* metric = FindSeries(families, name, labels, &type);
  if (metric == nullptr) return std::nullopt;
  switch (type) {
    case prometheus::MetricType::Counter: return metric->counter.value;
    case prometheus::MetricType::Gauge: return metric->gauge.value;
    case prometheus::MetricType::Histogram:
      return static_cast<double>(metric->histogram.sample_count);
    default: return std::nullopt;
  }
}

// A histogram's sum of observations; nullopt when there is no such series.
inline std::optional<double> HistogramSum(const std::vector<prometheus::MetricFamily>& families,
                                          const std::string& name,
                                          const std::map<std::string, std::string>& labels = {}) {
  const prometheus::ClientMetric* metric = FindSeries(families, name, labels);
  if (metric == nullptr) return std::nullopt;
  return metric->histogram.sample_sum;
}

}  // namespace dfv::server::testing

#endif  // DFV_TESTS_SERVER_METRIC_READER_H_
