// The process metrics every Prometheus exporter has, read from /proc at each
// scrape: process_cpu_seconds_total, process_resident_memory_bytes,
// process_virtual_memory_bytes, process_start_time_seconds,
// process_open_fds and process_max_fds. And the same readings for another
// process (the worker daemon reads its trainers').
#ifndef DFV_COMMON_METRICS_PROCESS_COLLECTOR_H_
#define DFV_COMMON_METRICS_PROCESS_COLLECTOR_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace dfv::metrics {

struct ProcessStats {
  double cpu_seconds = 0;          // user + system time
  int64_t resident_bytes = 0;
  int64_t virtual_bytes = 0;
  double start_time_seconds = 0;   // since the Unix epoch
};

// Reads /proc/<pid>/stat. NOT_FOUND when the process is gone, INTERNAL when
// the file cannot be understood.
absl::StatusOr<ProcessStats> ReadProcessStats(pid_t pid);

// The collector of this process's metrics. Thread-safe; stateless.
class ProcessCollector : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override;
};

}  // namespace dfv::metrics

#endif  // DFV_COMMON_METRICS_PROCESS_COLLECTOR_H_
