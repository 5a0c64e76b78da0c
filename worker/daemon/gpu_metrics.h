// The GPU metrics of a CUDA worker, read through NVML at each scrape:
// dfv_gpu_memory_used_bytes, dfv_gpu_memory_total_bytes and
// dfv_gpu_utilization_ratio, one series per device labelled `gpu` (NVML's
// device index). NVML is the driver's library, opened at run time: without it
// (no NVIDIA driver) the collector reports nothing, and fails nothing.
#ifndef DFV_WORKER_DAEMON_GPU_METRICS_H_
#define DFV_WORKER_DAEMON_GPU_METRICS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "worker/daemon/nvml_api.h"

namespace dfv::daemon {

class GpuCollector : public prometheus::Collectable {
 public:
  // Opens `library` (NVML's SONAME by default) and initialises NVML. Never
  // fails: when the library, one of its symbols or nvmlInit is missing, the
  // collector reports nothing and status() says why (UNAVAILABLE).
  static std::unique_ptr<GpuCollector> Create(const std::string& library = nvml::kLibrary);

  // Shuts NVML down and closes the library.
  ~GpuCollector() override;

  GpuCollector(const GpuCollector&) = delete;
  GpuCollector& operator=(const GpuCollector&) = delete;

  // OK when NVML was loaded and initialised.
  const absl::Status& status() const { return status_; }

  // The devices NVML saw when the collector was made (0 without NVML).
  int device_count() const { return static_cast<int>(devices_.size()); }

  // The three families, a sample per device that answered; a device whose
  // query fails this time is left out of that family. Empty without NVML.
  // Thread-safe (NVML is).
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  GpuCollector() = default;

  void* handle_ = nullptr;  // dlopen's
  absl::Status status_;
  nvml::ShutdownFn shutdown_ = nullptr;
  nvml::DeviceGetMemoryInfoFn memory_info_ = nullptr;
  nvml::DeviceGetUtilizationRatesFn utilization_ = nullptr;
  std::vector<nvml::Device> devices_;  // by NVML index
};

}  // namespace dfv::daemon

#endif  // DFV_WORKER_DAEMON_GPU_METRICS_H_
