// The whole monitoring path, live: a real coordinator (with its service
// discovery file), two real workers and a real Prometheus started from
// deploy/prometheus/prometheus.yml with deploy/prometheus/rules.yml, while a
// 2-rank job trains. Prometheus must find the workers through the file, scrape
// the job's loss terms, throughput and step times from both ranks and the
// queue from the coordinator; every query of the three Grafana dashboards must
// run and return data (the GPU panels excepted: these are CPU workers; and the
// RPC error panels, which only have data once an RPC failed), and every rule's
// expression must run. Once the job is cancelled, its series leave Prometheus
// after the workers' grace.
//
// Skips when Debian's prometheus is not installed.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"
#include "common/jobspec/catalogue.h"
#include "tests/deploy/prometheus_process.h"
#include "tests/deploy/promql_exprs.h"
#include "tests/integration/cluster.h"

namespace dfv::testing {
namespace {

constexpr absl::Duration kWait = absl::Seconds(60);

// Panels that have no series in a healthy CPU run, by title.
bool MayBeEmpty(const std::string& dashboard, const PromqlExpr& expr) {
  // No NVML on a CPU worker.
  if (dashboard == "worker.json" && absl::StrContains(expr.expr, "dfv_gpu_")) return true;
  // Only RPCs that failed are counted there.
  if (dashboard == "cluster.json" && absl::StrContains(expr.expr, R"(grpc_code!="OK")")) return true;
  return false;
}

TEST(PrometheusLiveTest, ScrapesATwoRankJobAndEveryDashboardPanelHasData) {
  Cluster cluster("prometheus_live");
  const std::string sd_file = cluster.dir() + "/workers.json";
  ASSERT_TRUE(cluster.StartCoordinator({"--prometheus-sd-file", sd_file}).ok()) << cluster.Log("coordinator");
  for (const char* name : {"w1", "w2"}) {
    ASSERT_TRUE(cluster.StartWorker(name, 1, {"--metrics-job-grace", "3"}).ok()) << cluster.Log(name);
  }
  const std::string coordinator_metrics = cluster.MetricsAddress("coordinator");
  ASSERT_FALSE(coordinator_metrics.empty());

  PrometheusOptions options;
  options.static_targets["dfv-coordinator"] = {coordinator_metrics};
  options.sd_files["dfv-worker"] = {sd_file};
  absl::StatusOr<std::unique_ptr<PrometheusProcess>> started = PrometheusProcess::Start(options);
  if (absl::IsNotFound(started.status())) GTEST_SKIP() << started.status();
  ASSERT_TRUE(started.ok()) << started.status();
  PrometheusProcess& prometheus = **started;

  // Both workers, found through the coordinator's file.
  absl::StatusOr<std::vector<PromSample>> up =
      prometheus.WaitFor(R"(up{job="dfv-worker"} == 1)", HasSamples(2), kWait);
  ASSERT_TRUE(up.ok()) << up.status() << "\n" << ReadFileToString(sd_file).value_or("(no SD file)");
  std::set<std::string> workers;
  for (const PromSample& sample : *up) workers.insert(sample.Label("worker"));
  EXPECT_EQ(workers, (std::set<std::string>{"w1", "w2"}));

  // A 2-rank job that trains until it is cancelled.
  CommandResult submitted = cluster.Dfvctl(
      {"submit", cluster.WriteJob("job.yaml", SmallJob("live", "vae", 1000000) + "resources: {workers: 2}\n")});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  const std::string id(absl::StripAsciiWhitespace(submitted.out));
  const std::string job = absl::StrCat(R"(job="dfv-worker", job_id=")", id, R"(")");

  // The loss terms of both ranks, every one the model has.
  absl::StatusOr<std::vector<PromSample>> loss = prometheus.WaitFor(
      absl::StrCat("dfv_job_training_metric{", job, R"(, term="loss"})"), HasSamples(2), kWait);
  ASSERT_TRUE(loss.ok()) << loss.status() << "\n" << cluster.Log("w1");
  std::set<std::string> ranks;
  for (const PromSample& sample : *loss) ranks.insert(sample.Label("rank"));
  EXPECT_EQ(ranks, (std::set<std::string>{"0", "1"}));
  absl::StatusOr<std::vector<PromSample>> terms =
      prometheus.Query(absl::StrCat("dfv_job_training_metric{", job, R"(, rank="0"})"));
  ASSERT_TRUE(terms.ok()) << terms.status();
  EXPECT_EQ(terms->size(), jobspec::FindModel("vae")->metrics.size()) << DescribeSamples(*terms);
  for (const PromSample& sample : *terms) EXPECT_TRUE(std::isfinite(sample.value)) << sample;
  std::cout << "Prometheus, rank 0's training metrics:\n" << DescribeSamples(*terms) << std::flush;
  // Throughput, step times (through the deployed recording rules) and checkpoints.
  EXPECT_TRUE(prometheus
                  .WaitFor(absl::StrCat("dfv_job_samples_per_second{", job, "}"),
                           AllValues([](double v) { return v > 0; }), kWait)
                  .ok());
  EXPECT_TRUE(prometheus
                  .WaitFor(absl::StrCat(R"(job_id:dfv_job_step_seconds:mean_5m{job_id=")", id, R"("})"),
                           AllValues([](double v) { return v > 0 && v < 10; }), kWait)
                  .ok());
  EXPECT_TRUE(prometheus
                  .WaitFor(absl::StrCat("dfv_job_allreduce_bytes_total{", job, "}"),
                           AllValues([](double v) { return v > 0; }), kWait)
                  .ok());
  EXPECT_TRUE(prometheus
                  .WaitFor(absl::StrCat("dfv_job_checkpoint_written_bytes_total{", job, R"(, rank="0"})"),
                           AllValues([](double v) { return v > 0; }), kWait)
                  .ok());
  // The coordinator's side: the job runs, nothing is queued.
  EXPECT_TRUE(prometheus
                  .WaitFor(R"(dfv_jobs{job="dfv-coordinator", state="RUNNING"})",
                           AllValues([](double v) { return v == 1; }), kWait)
                  .ok());
  absl::StatusOr<std::vector<PromSample>> queue = prometheus.Query(R"(dfv_queue_length{job="dfv-coordinator"})");
  ASSERT_TRUE(queue.ok()) << queue.status();
  ASSERT_EQ(queue->size(), 1u);
  EXPECT_EQ((*queue)[0].value, 0);

  // Every query of every dashboard runs on what was scraped and has data.
  // Rates over 1m need two scrapes: wait for the 'Step time by rank' kind.
  ASSERT_TRUE(prometheus
                  .WaitFor(absl::StrCat("rate(dfv_job_step_seconds_count{", job, "}[1m])"), HasSamples(2), kWait)
                  .ok());
  for (const std::string name : {"cluster.json", "job.json", "worker.json"}) {
    absl::StatusOr<nlohmann::json> dashboard = ReadJsonFile(DeployDir() + "/grafana/dashboards/" + name);
    ASSERT_TRUE(dashboard.ok()) << dashboard.status();
    GrafanaValues values = MatchAnyValue(*dashboard);
    values.variables["job"] = id;
    absl::StatusOr<std::vector<PromqlExpr>> exprs = DashboardExprs(*dashboard, name, values);
    ASSERT_TRUE(exprs.ok()) << exprs.status();
    for (const PromqlExpr& expr : *exprs) {
      absl::StatusOr<std::vector<PromSample>> result = prometheus.Query(expr.expr);
      ASSERT_TRUE(result.ok()) << expr.origin << ": " << result.status();
      if (!MayBeEmpty(name, expr)) {
        EXPECT_FALSE(result->empty()) << expr.origin << ": no data for " << expr.expr;
      }
    }
  }

  // Every rule's expression parses and runs (alerts have no data on a healthy cluster).
  absl::StatusOr<std::vector<PromqlExpr>> rules = RuleExprs(DeployDir() + "/prometheus/rules.yml");
  ASSERT_TRUE(rules.ok()) << rules.status();
  for (const PromqlExpr& expr : *rules) {
    absl::StatusOr<std::vector<PromSample>> result = prometheus.Query(expr.expr);
    EXPECT_TRUE(result.ok()) << expr.origin << ": " << result.status();
  }
  // The recording rules the job dashboard reads have this job's series.
  for (const char* rule : {"job_id:dfv_job_step_seconds:p50_5m", "job_id:dfv_job_step_seconds:p90_5m",
                           "job_id:dfv_job_step_seconds:p99_5m", "job_id:dfv_job_step_seconds:mean_5m",
                           "job_id:dfv_job_allreduce_seconds_per_step_seconds:ratio_rate5m",
                           "job_id:dfv_job_data_wait_seconds:avg_rate5m"}) {
    absl::StatusOr<std::vector<PromSample>> result =
        prometheus.Query(absl::StrCat(rule, R"({job_id=")", id, R"("})"));
    ASSERT_TRUE(result.ok()) << rule << ": " << result.status();
    EXPECT_EQ(result->size(), 1u) << rule;
  }

  // Cancelled, the job's series leave both workers after the 3 s grace, and
  // Prometheus marks them stale at the next scrape.
  CommandResult cancelled = cluster.Dfvctl({"cancel", id});
  ASSERT_EQ(cancelled.exit_code, 0) << cancelled.err;
  EXPECT_TRUE(prometheus
                  .WaitFor(absl::StrCat(R"({job="dfv-worker", job_id=")", id, R"("})"),
                           [](const std::vector<PromSample>& samples) { return samples.empty(); }, kWait)
                  .ok());
  absl::StatusOr<std::vector<PromSample>> slots =
      prometheus.WaitFor(R"(sum(dfv_worker_slots{job="dfv-worker", state="busy"}))",
                         AllValues([](double v) { return v == 0; }), kWait);
  EXPECT_TRUE(slots.ok()) << slots.status();
  EXPECT_TRUE(prometheus
                  .WaitFor(R"(dfv_jobs{job="dfv-coordinator", state="CANCELLED"})",
                           AllValues([](double v) { return v == 1; }), kWait)
                  .ok());
}

}  // namespace
}  // namespace dfv::testing
