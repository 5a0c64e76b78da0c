#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "common/metrics/metrics_server.h"
#include "common/metrics/process_collector.h"
#include "prometheus/counter.h"
#include "prometheus/registry.h"
#include "tests/testing/http_get.h"

namespace dfv::metrics {
namespace {

using ::testing::HasSubstr;

TEST(MetricsServerTest, ServesRegisteredFamiliesOnAFreeLoopbackPort) {
  absl::StatusOr<std::unique_ptr<MetricsServer>> server = MetricsServer::Create("127.0.0.1:0");
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_THAT((*server)->address(), ::testing::StartsWith("127.0.0.1:"));
  EXPECT_NE((*server)->address(), "127.0.0.1:0");

  auto registry = std::make_shared<prometheus::Registry>();
  auto& family = prometheus::BuildCounter().Name("dfv_test_things_total").Help("Things.").Register(*registry);
  family.Add({{"kind", "a"}}).Increment(3);
  (*server)->Register(registry);

  absl::StatusOr<testing::HttpResponse> page = testing::HttpGet((*server)->address(), "/metrics");
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->status, 200);
  EXPECT_THAT(page->body, HasSubstr("# TYPE dfv_test_things_total counter"));
  EXPECT_THAT(page->body, HasSubstr("dfv_test_things_total{kind=\"a\"} 3"));
  EXPECT_THAT(page->body, HasSubstr("# TYPE process_resident_memory_bytes gauge"));
  EXPECT_THAT(page->body, HasSubstr("process_cpu_seconds_total "));
}

TEST(MetricsServerTest, ServesAnyAddressWhenInsecure) {
  absl::StatusOr<std::unique_ptr<MetricsServer>> open = MetricsServer::Create("0.0.0.0:0", /*insecure=*/true);
  ASSERT_TRUE(open.ok()) << open.status();
  EXPECT_THAT((*open)->address(), ::testing::StartsWith("0.0.0.0:"));
}

TEST(MetricsServerTest, RefusesNonLoopbackAndBadAddresses) {
  absl::StatusOr<std::unique_ptr<MetricsServer>> open = MetricsServer::Create("0.0.0.0:0");
  EXPECT_TRUE(absl::IsInvalidArgument(open.status())) << open.status();
  EXPECT_THAT(std::string(open.status().message()), HasSubstr("loopback"));
  EXPECT_TRUE(absl::IsInvalidArgument(MetricsServer::Create("127.0.0.1").status()));

  absl::StatusOr<std::unique_ptr<MetricsServer>> first = MetricsServer::Create("127.0.0.1:0");
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<std::unique_ptr<MetricsServer>> taken = MetricsServer::Create((*first)->address());
  EXPECT_TRUE(absl::IsUnavailable(taken.status())) << taken.status();
}

TEST(ProcessStatsTest, ReadsThisProcessAndNotAMissingOne) {
  absl::StatusOr<ProcessStats> self = ReadProcessStats(getpid());
  ASSERT_TRUE(self.ok()) << self.status();
  EXPECT_GT(self->resident_bytes, 1 << 20);
  EXPECT_GE(self->virtual_bytes, self->resident_bytes);
  EXPECT_GE(self->cpu_seconds, 0.0);
  EXPECT_GT(self->start_time_seconds, 1.6e9);  // after 2020
  EXPECT_TRUE(absl::IsNotFound(ReadProcessStats(999999999).status()));
}

}  // namespace
}  // namespace dfv::metrics
