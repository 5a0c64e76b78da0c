// metrics.csv: one row per log window, columns fixed by the first row
// (step, epoch, then the metric names in the model's order).
#ifndef DFV_WORKER_TRAIN_METRICS_LOG_H_
#define DFV_WORKER_TRAIN_METRICS_LOG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/models/model.h"

namespace dfv::train {

class MetricsLog {
 public:
  // Opens `path`. With `resume_step` >= 0, keeps the header and the rows up
  // to and including that step (so a resumed run's curve carries on from
  // there) and drops later ones; otherwise starts a new file.
  static absl::StatusOr<MetricsLog> Open(const std::string& path, int64_t resume_step);

  // Appends a row. The first row of a new file fixes the columns; a metric
  // missing from a later row is written empty, an extra one is dropped.
  absl::Status Append(int64_t step, int64_t epoch, const models::Metrics& metrics);

 private:
  explicit MetricsLog(std::string path) : path_(std::move(path)) {}
  std::string path_;
  std::vector<std::string> columns_;  // metric columns after step, epoch
};

}  // namespace dfv::train

#endif  // DFV_WORKER_TRAIN_METRICS_LOG_H_
