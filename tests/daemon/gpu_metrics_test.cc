// The GPU collector. The first group runs anywhere: without NVML (no NVIDIA
// driver, or a library that is not NVML) it reports nothing and fails
// nothing. The NvmlGpuTest group needs the driver and a GPU, and skips
// without them.
#include "worker/daemon/gpu_metrics.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace dfv::daemon {
namespace {

// --- Without a GPU ----------------------------------------------------------

TEST(GpuCollectorTest, WithoutNvmlItReportsNothingAndFailsNothing) {
  auto collector = GpuCollector::Create("libdfv-no-such-nvml.so.1");
  ASSERT_NE(collector, nullptr);
  EXPECT_TRUE(absl::IsUnavailable(collector->status())) << collector->status();
  EXPECT_NE(std::string(collector->status().message()).find("libdfv-no-such-nvml.so.1"), std::string::npos)
      << collector->status();
  EXPECT_EQ(collector->device_count(), 0);
  EXPECT_TRUE(collector->Collect().empty());
}

TEST(GpuCollectorTest, ALibraryThatIsNotNvmlIsRefusedByItsMissingSymbols) {
  // The C library is always there and has none of NVML's symbols.
  auto collector = GpuCollector::Create("libc.so.6");
  EXPECT_TRUE(absl::IsUnavailable(collector->status())) << collector->status();
  EXPECT_NE(std::string(collector->status().message()).find("nvmlInit_v2"), std::string::npos)
      << collector->status();
  EXPECT_TRUE(collector->Collect().empty());
}

// --- With a GPU -------------------------------------------------------------

class NvmlGpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    collector_ = GpuCollector::Create();
    if (!collector_->status().ok()) GTEST_SKIP() << "no NVML on this machine: " << collector_->status();
    if (collector_->device_count() == 0) GTEST_SKIP() << "NVML sees no GPU on this machine";
  }
  std::unique_ptr<GpuCollector> collector_;
};

TEST_F(NvmlGpuTest, EveryDeviceHasItsMemoryAndUtilisation) {
  std::map<std::string, std::map<std::string, double>> values;  // family -> gpu -> value
  for (const auto& family : collector_->Collect()) {
    EXPECT_EQ(family.type, prometheus::MetricType::Gauge) << family.name;
    for (const auto& metric : family.metric) {
      ASSERT_EQ(metric.label.size(), 1u);
      EXPECT_EQ(metric.label[0].name, "gpu");
      values[family.name][metric.label[0].value] = metric.gauge.value;
    }
  }
  const size_t devices = static_cast<size_t>(collector_->device_count());
  ASSERT_EQ(values["dfv_gpu_memory_total_bytes"].size(), devices);
  ASSERT_EQ(values["dfv_gpu_memory_used_bytes"].size(), devices);
  ASSERT_EQ(values["dfv_gpu_utilization_ratio"].size(), devices);
  for (const auto& [gpu, total] : values["dfv_gpu_memory_total_bytes"]) {
    EXPECT_GT(total, 1 << 30) << "gpu " << gpu;
    EXPECT_GE(values["dfv_gpu_memory_used_bytes"][gpu], 0) << "gpu " << gpu;
    EXPECT_LE(values["dfv_gpu_memory_used_bytes"][gpu], total) << "gpu " << gpu;
    EXPECT_GE(values["dfv_gpu_utilization_ratio"][gpu], 0) << "gpu " << gpu;
    EXPECT_LE(values["dfv_gpu_utilization_ratio"][gpu], 1) << "gpu " << gpu;
  }
  EXPECT_TRUE(values["dfv_gpu_memory_total_bytes"].count("0"));
}

}  // namespace
}  // namespace dfv::daemon
