// The live-Prometheus harness against real Prometheus servers: it scrapes a
// MetricsServer (the /metrics endpoint both daemons use) through the deployed
// scrape jobs, static and file service discovery, evaluates the deployed
// recording rules, and answers every dashboard query; and it cleans up.
#include "tests/deploy/prometheus_process.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/metrics/metrics_server.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "tests/deploy/programs.h"
#include "tests/testing/http_get.h"

namespace dfv::testing {
namespace {

using ::testing::HasSubstr;

constexpr absl::Duration kWait = absl::Seconds(30);

class PrometheusProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (absl::Status found = FindProgram("prometheus").status(); !found.ok()) GTEST_SKIP() << found.message();
  }
};

TEST_F(PrometheusProcessTest, ReadsBackACounterServedByAMetricsServer) {
  absl::StatusOr<std::unique_ptr<metrics::MetricsServer>> server = metrics::MetricsServer::Create("127.0.0.1:0");
  ASSERT_TRUE(server.ok()) << server.status();
  auto registry = std::make_shared<prometheus::Registry>();
  prometheus::Counter& counter = prometheus::BuildCounter()
                                     .Name("dfv_test_things_total")
                                     .Help("Things.")
                                     .Register(*registry)
                                     .Add({{"kind", "a"}});
  counter.Increment(3);
  (*server)->Register(registry);

  PrometheusOptions options;
  options.static_targets["dfv-coordinator"] = {(*server)->address()};
  absl::StatusOr<std::unique_ptr<PrometheusProcess>> prometheus = PrometheusProcess::Start(options);
  ASSERT_TRUE(prometheus.ok()) << prometheus.status();
  PrometheusProcess& p = **prometheus;

  absl::StatusOr<std::vector<PromSample>> samples =
      p.WaitFor(R"(dfv_test_things_total{kind="a"})", HasSamples(), kWait);
  ASSERT_TRUE(samples.ok()) << samples.status() << "\n" << p.Log();
  ASSERT_EQ(samples->size(), 1u) << DescribeSamples(*samples);
  EXPECT_EQ((*samples)[0].value, 3);
  EXPECT_EQ((*samples)[0].Label("__name__"), "dfv_test_things_total");
  EXPECT_EQ((*samples)[0].Label("job"), "dfv-coordinator");
  EXPECT_EQ((*samples)[0].Label("instance"), (*server)->address());

  counter.Increment(2);
  samples = p.WaitFor(R"(dfv_test_things_total{kind="a"})", AllValues([](double v) { return v == 5; }), kWait);
  ASSERT_TRUE(samples.ok()) << samples.status();

  // The same scrape through the other endpoints; scalars come back as one sample.
  absl::StatusOr<std::vector<PromTarget>> targets = p.Targets();
  ASSERT_TRUE(targets.ok()) << targets.status();
  ASSERT_EQ(targets->size(), 1u);
  EXPECT_EQ((*targets)[0].health, "up") << (*targets)[0].last_error;
  EXPECT_EQ((*targets)[0].labels.at("job"), "dfv-coordinator");
  EXPECT_EQ((*targets)[0].scrape_url, absl::StrCat("http://", (*server)->address(), "/metrics"));
  absl::StatusOr<std::vector<std::map<std::string, std::string>>> series = p.Series("dfv_test_things_total");
  ASSERT_TRUE(series.ok()) << series.status();
  ASSERT_EQ(series->size(), 1u);
  EXPECT_EQ(series->at(0).at("kind"), "a");
  absl::StatusOr<std::vector<PromSample>> scalar = p.Query("scalar(dfv_test_things_total) * 2");
  ASSERT_TRUE(scalar.ok()) << scalar.status();
  ASSERT_EQ(scalar->size(), 1u);
  EXPECT_EQ((*scalar)[0].value, 10);
  EXPECT_TRUE((*scalar)[0].labels.empty());
  // The process metrics every MetricsServer adds.
  EXPECT_TRUE(p.WaitFor(R"(process_resident_memory_bytes{job="dfv-coordinator"} > 0)", HasSamples(), kWait).ok());
}

// A stand-in for a worker daemon's /metrics: series named and labelled as the
// metrics contract (README.md) says, with steps of 0.25 s observed meanwhile.
class FakeWorkerMetrics {
 public:
  FakeWorkerMetrics() {
    auto& step = prometheus::BuildGauge().Name("dfv_job_step").Help("Steps.").Register(*registry_);
    step.Add({{"job_id", "j1"}, {"rank", "0"}}).Set(42);
    auto& slots = prometheus::BuildGauge().Name("dfv_worker_slots").Help("Slots.").Register(*registry_);
    slots.Add({{"state", "free"}}).Set(1);
    auto& metric = prometheus::BuildGauge().Name("dfv_job_training_metric").Help("Metrics.").Register(*registry_);
    metric.Add({{"job_id", "j1"}, {"rank", "0"}, {"term", "loss"}}).Set(0.5);
    metric.Add({{"job_id", "j1"}, {"rank", "0"}, {"term", "kl"}}).Set(std::nan(""));
    step_seconds_ = &prometheus::BuildHistogram()
                         .Name("dfv_job_step_seconds")
                         .Help("Step time.")
                         .Register(*registry_)
                         .Add({{"job_id", "j1"}, {"rank", "0"}}, prometheus::Histogram::BucketBoundaries{0.1, 0.5, 1});
    observer_ = std::thread([this] {
      while (!stop_) {
        step_seconds_->Observe(0.25);
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    });
  }
  ~FakeWorkerMetrics() {
    stop_ = true;
    observer_.join();
  }

  absl::Status Serve() {
    absl::StatusOr<std::unique_ptr<metrics::MetricsServer>> server = metrics::MetricsServer::Create("127.0.0.1:0");
    if (!server.ok()) return server.status();
    server_ = *std::move(server);
    server_->Register(registry_);
    return absl::OkStatus();
  }
  const std::string& address() const { return server_->address(); }

 private:
  std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();
  prometheus::Histogram* step_seconds_ = nullptr;
  std::unique_ptr<metrics::MetricsServer> server_;
  std::atomic<bool> stop_{false};
  std::thread observer_;
};

TEST_F(PrometheusProcessTest, ScrapesWorkersFromTheServiceDiscoveryFileAndEvaluatesTheRules) {
  FakeWorkerMetrics worker;
  ASSERT_TRUE(worker.Serve().ok());
  const std::string dir = MakeTestDir("prometheus-sd");
  const std::string sd_file = dir + "/workers.json";  // written once Prometheus runs, as a coordinator would

  PrometheusOptions options;
  options.sd_files["dfv-worker"] = {sd_file};
  absl::StatusOr<std::unique_ptr<PrometheusProcess>> prometheus = PrometheusProcess::Start(options);
  ASSERT_TRUE(prometheus.ok()) << prometheus.status();
  PrometheusProcess& p = **prometheus;
  const nlohmann::json groups = {{{"targets", {worker.address()}}, {"labels", {{"worker", "w1"}}}}};
  ASSERT_TRUE(WriteFileAtomically(sd_file, groups.dump()).ok());

  absl::StatusOr<std::vector<PromSample>> up =
      p.WaitFor(R"(up{job="dfv-worker", worker="w1"} == 1)", HasSamples(), kWait);
  ASSERT_TRUE(up.ok()) << up.status() << "\n" << p.Log();
  // The dfv job id is `job_id`; `job` is the scrape job's on every series.
  absl::StatusOr<std::vector<PromSample>> step =
      p.Query(R"(dfv_job_step{job="dfv-worker", job_id="j1", rank="0", worker="w1"})");
  ASSERT_TRUE(step.ok()) << step.status();
  ASSERT_EQ(step->size(), 1u) << DescribeSamples(p.Query("dfv_job_step").value_or(std::vector<PromSample>{}));
  EXPECT_EQ((*step)[0].value, 42);
  EXPECT_EQ((*step)[0].Label("exported_job"), "");
  absl::StatusOr<std::vector<PromSample>> slots =
      p.Query(R"(dfv_worker_slots{job="dfv-worker", worker="w1", state="free"})");
  ASSERT_TRUE(slots.ok()) << slots.status();
  EXPECT_EQ(slots->size(), 1u);

  // The deployed recording rules and alerts, evaluated on what was scraped.
  absl::StatusOr<std::vector<PromSample>> mean = p.WaitFor(
      R"(job_id:dfv_job_step_seconds:mean_5m{job_id="j1"})", AllValues([](double v) { return std::abs(v - 0.25) < 1e-9; }),
      kWait);
  ASSERT_TRUE(mean.ok()) << mean.status();
  absl::StatusOr<std::vector<PromSample>> p50 = p.Query(R"(job_id:dfv_job_step_seconds:p50_5m{job_id="j1"})");
  ASSERT_TRUE(p50.ok()) << p50.status();
  ASSERT_EQ(p50->size(), 1u);
  EXPECT_GT((*p50)[0].value, 0.1);  // within the bucket (0.1, 0.5]
  EXPECT_LE((*p50)[0].value, 0.5);
  absl::StatusOr<std::vector<PromSample>> alert =
      p.WaitFor(R"(ALERTS{alertname="DfvJobTrainingMetricNotFinite", alertstate="firing"})", HasSamples(), kWait);
  ASSERT_TRUE(alert.ok()) << alert.status();
  ASSERT_EQ(alert->size(), 1u) << DescribeSamples(*alert);
  EXPECT_EQ((*alert)[0].Label("term"), "kl");
  EXPECT_EQ((*alert)[0].Label("job_id"), "j1");

  // Every query of the job and worker dashboards runs, with this job and worker.
  for (const std::string name : {"job.json", "worker.json"}) {
    absl::StatusOr<nlohmann::json> dashboard = ReadJsonFile(DeployDir() + "/grafana/dashboards/" + name);
    ASSERT_TRUE(dashboard.ok()) << dashboard.status();
    GrafanaValues values;
    values.variables = {{"job", "j1"}, {"worker", "w1"}};
    absl::StatusOr<std::vector<PromqlExpr>> exprs = DashboardExprs(*dashboard, name, values);
    ASSERT_TRUE(exprs.ok()) << exprs.status();
    for (const PromqlExpr& expr : *exprs) {
      absl::StatusOr<std::vector<PromSample>> result = p.Query(expr.expr);
      EXPECT_TRUE(result.ok()) << expr.origin << ": " << result.status();
    }
  }
  absl::StatusOr<std::vector<PromSample>> loss = p.Query(R"(dfv_job_training_metric{job_id=~"j1", rank="0"})");
  ASSERT_TRUE(loss.ok()) << loss.status();
  EXPECT_EQ(loss->size(), 2u) << DescribeSamples(*loss);  // one series per term

  // A worker that leaves the file is no longer scraped, and its series go
  // stale at once (instant queries stop returning them).
  ASSERT_TRUE(WriteFileAtomically(sd_file, "[]").ok());
  auto none = [](const std::vector<PromSample>& samples) { return samples.empty(); };
  EXPECT_TRUE(p.WaitFor(R"(up{job="dfv-worker"})", none, kWait).ok());
  EXPECT_TRUE(p.WaitFor(R"(dfv_job_step{job_id="j1"})", none, kWait).ok());
  // ...while the storage still has them.
  absl::StatusOr<std::vector<std::map<std::string, std::string>>> series = p.Series(R"(dfv_job_step{job_id="j1"})");
  ASSERT_TRUE(series.ok()) << series.status();
  EXPECT_EQ(series->size(), 1u);
  std::filesystem::remove_all(dir);
}

TEST_F(PrometheusProcessTest, ReportsBadOptionsQueriesAndTimeoutsAndCleansUp) {
  PrometheusOptions unknown_job;
  unknown_job.static_targets["dfv-nothing"] = {"127.0.0.1:1"};
  absl::StatusOr<std::unique_ptr<PrometheusProcess>> refused = PrometheusProcess::Start(unknown_job);
  EXPECT_TRUE(absl::IsInvalidArgument(refused.status())) << refused.status();
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("dfv-coordinator, dfv-worker"));

  const std::string dir = MakeTestDir("prometheus-bad-rules");
  const std::string broken_rules = "groups:\n  - name: g\n    rules:\n      - record: x\n        expr: sum((\n";
  ASSERT_TRUE(WriteFileAtomically(dir + "/rules.yml", broken_rules).ok());
  PrometheusOptions bad_rules;
  bad_rules.rule_files = {dir + "/rules.yml"};
  absl::StatusOr<std::unique_ptr<PrometheusProcess>> exited = PrometheusProcess::Start(bad_rules);
  EXPECT_TRUE(absl::IsInternal(exited.status())) << exited.status();
  EXPECT_THAT(std::string(exited.status().message()), HasSubstr("parse error"));
  std::filesystem::remove_all(dir);

  PrometheusOptions options;  // no targets at all
  absl::StatusOr<std::unique_ptr<PrometheusProcess>> prometheus = PrometheusProcess::Start(options);
  ASSERT_TRUE(prometheus.ok()) << prometheus.status();
  absl::StatusOr<std::vector<PromSample>> broken = (*prometheus)->Query("sum(rate(x[5m])");
  EXPECT_TRUE(absl::IsInvalidArgument(broken.status())) << broken.status();
  EXPECT_THAT(std::string(broken.status().message()), HasSubstr("parse error"));
  EXPECT_TRUE(absl::IsInvalidArgument((*prometheus)->WaitFor("x[5m]", HasSamples(), kWait).status()));
  const absl::Time start = absl::Now();
  absl::StatusOr<std::vector<PromSample>> never = (*prometheus)->WaitFor("vector(1)", HasSamples(2), absl::Seconds(1));
  EXPECT_TRUE(absl::IsDeadlineExceeded(never.status())) << never.status();
  EXPECT_THAT(std::string(never.status().message()), HasSubstr("{} 1"));  // the last answer
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));

  const std::string address = (*prometheus)->address();
  const std::string folder = (*prometheus)->dir();
  EXPECT_TRUE(std::filesystem::exists(folder + "/prometheus.yml"));
  prometheus->reset();
  EXPECT_FALSE(std::filesystem::exists(folder));
  EXPECT_TRUE(absl::IsUnavailable(HttpGet(address, "/-/ready").status()));
}

}  // namespace
}  // namespace dfv::testing
