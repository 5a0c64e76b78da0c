#include "worker/daemon/gpu_metrics.h"

#include <dlfcn.h>

#include <string>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace dfv::daemon {
namespace {

prometheus::ClientMetric Sample(int gpu, double value) {
  prometheus::ClientMetric metric;
  metric.label.push_back({"gpu", std::to_string(gpu)});
  metric.gauge.value = value;
  return metric;
}

}  // namespace

std::unique_ptr<GpuCollector> GpuCollector::Create(const std::string& library) {
  std::unique_ptr<GpuCollector> collector(new GpuCollector());
  // RTLD_LOCAL: NVML's symbols stay out of the global namespace.
  collector->handle_ = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (collector->handle_ == nullptr) {
    const char* why = dlerror();
    collector->status_ = absl::UnavailableError(absl::StrCat("cannot open ", library, ": ", why ? why : "?"));
    return collector;
  }
  void* handle = collector->handle_;
  std::string missing;
  auto symbol = [&](const char* name, auto* out) {
    *out = reinterpret_cast<std::remove_pointer_t<decltype(out)>>(dlsym(handle, name));
    if (*out == nullptr) absl::StrAppend(&missing, missing.empty() ? "" : ", ", name);
  };
  nvml::InitFn init = nullptr;
  nvml::ErrorStringFn error_string = nullptr;
  nvml::DeviceGetCountFn get_count = nullptr;
  nvml::DeviceGetHandleByIndexFn get_handle = nullptr;
  symbol("nvmlInit_v2", &init);
  symbol("nvmlShutdown", &collector->shutdown_);
  symbol("nvmlErrorString", &error_string);
  symbol("nvmlDeviceGetCount_v2", &get_count);
  symbol("nvmlDeviceGetHandleByIndex_v2", &get_handle);
  symbol("nvmlDeviceGetMemoryInfo", &collector->memory_info_);
  symbol("nvmlDeviceGetUtilizationRates", &collector->utilization_);
  if (!missing.empty()) {
    collector->status_ = absl::UnavailableError(absl::StrCat(library, " has no ", missing));
    collector->shutdown_ = nullptr;  // nothing to shut down
    return collector;
  }
  if (const nvml::Return r = init(); r != nvml::kSuccess) {
    collector->status_ = absl::UnavailableError(absl::StrCat("nvmlInit: ", error_string(r)));
    collector->shutdown_ = nullptr;
    return collector;
  }
  unsigned int count = 0;
  if (const nvml::Return r = get_count(&count); r != nvml::kSuccess) {
    collector->status_ = absl::UnavailableError(absl::StrCat("nvmlDeviceGetCount: ", error_string(r)));
    return collector;
  }
  for (unsigned int i = 0; i < count; ++i) {
    nvml::Device device = nullptr;
    if (const nvml::Return r = get_handle(i, &device); r != nvml::kSuccess) {
      // A device the worker may not query (another container's, or lost):
      // the indices after it still name their devices.
      spdlog::warn("NVML device {}: {}", i, error_string(r));
      device = nullptr;
    }
    collector->devices_.push_back(device);
  }
  return collector;
}

GpuCollector::~GpuCollector() {
  if (shutdown_ != nullptr) shutdown_();
  if (handle_ != nullptr) dlclose(handle_);
}

std::vector<prometheus::MetricFamily> GpuCollector::Collect() const {
  if (devices_.empty()) return {};
  prometheus::MetricFamily used{"dfv_gpu_memory_used_bytes", "GPU memory in use (NVML), by device.",
                                prometheus::MetricType::Gauge, {}};
  prometheus::MetricFamily total{"dfv_gpu_memory_total_bytes", "GPU memory in all (NVML), by device.",
                                 prometheus::MetricType::Gauge, {}};
  prometheus::MetricFamily busy{"dfv_gpu_utilization_ratio",
                                "Share of the last NVML sample period (1/6 s to 1 s) in which a kernel ran.",
                                prometheus::MetricType::Gauge, {}};
  for (size_t i = 0; i < devices_.size(); ++i) {
    if (devices_[i] == nullptr) continue;
    const int gpu = static_cast<int>(i);
    nvml::Memory memory{};
    if (memory_info_(devices_[i], &memory) == nvml::kSuccess) {
      used.metric.push_back(Sample(gpu, static_cast<double>(memory.used)));
      total.metric.push_back(Sample(gpu, static_cast<double>(memory.total)));
    }
    nvml::Utilization utilization{};
    if (utilization_(devices_[i], &utilization) == nvml::kSuccess) {
      busy.metric.push_back(Sample(gpu, utilization.gpu / 100.0));
    }
  }
  std::vector<prometheus::MetricFamily> families;
  for (auto* family : {&used, &total, &busy}) {
    if (!family->metric.empty()) families.push_back(std::move(*family));
  }
  return families;
}

}  // namespace dfv::daemon
