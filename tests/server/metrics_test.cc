// The coordinator's metrics (server/metrics.h) driven through a Coordinator
// with a FakeClock and fake workers, read back from what a scrape collects.
#include "server/metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "common/file_util.h"
#include "server/clock.h"
#include "server/coordinator.h"
#include "tests/server/fake_worker.h"
#include "tests/server/metric_reader.h"
#include "tests/server/test_util.h"

namespace dfv::server {
namespace {

using ::testing::Optional;
using testing::FakeWorker;
using testing::Running;
using testing::SeriesValue;

class CoordinatorMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_dir_ = testing::FreshDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    Open();
  }

  // (Re)opens the coordinator on the data folder, with fresh metrics.
  void Open() {
    coordinator_.reset();
    metrics_ = std::make_unique<CoordinatorMetrics>();
    CoordinatorOptions options;
    options.data_dir = data_dir_;
    options.clock = &clock_;
    options.metrics = metrics_.get();
    // A restart requeues running jobs at once (coordinator_test covers
    // adoption), so the restart counter moves.
    options.adopt_grace_ms = 0;
    auto coordinator = Coordinator::Create(options);
    ASSERT_TRUE(coordinator.ok()) << coordinator.status();
    coordinator_ = std::move(*coordinator);
  }

  std::string Submit(const std::string& yaml) {
    auto job = coordinator_->SubmitJob(yaml, "job.yaml", {}, /*wait_for_workers=*/true);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? job->id() : "";
  }

  std::optional<double> Value(const std::string& name,
                              const std::map<std::string, std::string>& labels = {}) {
    return SeriesValue(metrics_->Collect(), name, labels);
  }

  // Advances the clock past the lease TTL while `alive` keep heartbeating.
  void LoseWorkers(const std::vector<FakeWorker*>& alive = {}) { testing::LoseWorkers(clock_, *coordinator_, alive); }

  std::string data_dir_;
  FakeClock clock_;
  std::unique_ptr<CoordinatorMetrics> metrics_;  // outlives coordinator_
  std::unique_ptr<Coordinator> coordinator_;
};

TEST_F(CoordinatorMetricsTest, EveryFamilyOfTheContractIsThereFromTheStart) {
  std::vector<prometheus::MetricFamily> families = metrics_->Collect();
  for (const char* name :
       {"dfv_jobs", "dfv_queue_length", "dfv_queue_oldest_age_seconds", "dfv_jobs_submitted_total",
        "dfv_jobs_finished_total", "dfv_job_submit_to_running_seconds", "dfv_workers",
        "dfv_worker_slots", "dfv_worker_leases_expired_total", "dfv_job_restarts_total",
        "grpc_server_handled_total", "grpc_server_handling_seconds", "dfv_artifact_stored_bytes",
        "dfv_artifact_written_bytes_total", "dfv_events_appended_total", "dfv_watchers",
        "dfv_store_commit_seconds"}) {
    EXPECT_TRUE(testing::FindSeries(families, name, {}) != nullptr) << name;
  }
  for (const char* state : {"QUEUED", "SCHEDULED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"}) {
    EXPECT_THAT(SeriesValue(families, "dfv_jobs", {{"state", state}}), Optional(0.0)) << state;
  }
  for (const char* state : {"SUCCEEDED", "FAILED", "CANCELLED"}) {
    EXPECT_THAT(SeriesValue(families, "dfv_jobs_finished_total", {{"state", state}}),
                Optional(0.0));
  }
  EXPECT_EQ(SeriesValue(families, "dfv_jobs_finished_total", {{"state", "RUNNING"}}), std::nullopt);
  for (const char* reason :
       {"worker_lost", "rank_failed", "rank_cancelled", "rendezvous", "coordinator_restarted"}) {
    EXPECT_THAT(SeriesValue(families, "dfv_job_restarts_total", {{"reason", reason}}),
                Optional(0.0));
  }
  // Every method of both services, with every code.
  EXPECT_THAT(SeriesValue(families, "grpc_server_handled_total",
                          {{"grpc_service", "dfv.v1.WorkerGateway"},
                           {"grpc_method", "UploadArtifact"},
                           {"grpc_code", "Unauthenticated"}}),
              Optional(0.0));
  EXPECT_THAT(SeriesValue(families, "grpc_server_handling_seconds",
                          {{"grpc_service", "dfv.v1.Coordinator"}, {"grpc_method", "WatchJob"}}),
              Optional(0.0));
  EXPECT_NE(metrics_->FindRpcMethod("/dfv.v1.Coordinator/SubmitJob"), nullptr);
  EXPECT_EQ(metrics_->FindRpcMethod("/grpc.health.v1.Health/Check"), nullptr);
}

TEST_F(CoordinatorMetricsTest, ASubmittedJobIsQueuedAndTheQueueAges) {
  Submit(testing::JobYaml("waits"));
  EXPECT_THAT(Value("dfv_jobs_submitted_total"), Optional(1.0));
  EXPECT_THAT(Value("dfv_jobs", {{"state", "QUEUED"}}), Optional(1.0));
  EXPECT_THAT(Value("dfv_queue_length"), Optional(1.0));
  EXPECT_THAT(Value("dfv_queue_oldest_age_seconds"), Optional(0.0));
  EXPECT_THAT(Value("dfv_events_appended_total"), Optional(1.0));  // QUEUED
  EXPECT_THAT(Value("dfv_store_commit_seconds"), Optional(::testing::Ge(1.0)));

  clock_.AdvanceMs(30000);
  Submit(testing::JobYaml("later"));
  clock_.AdvanceMs(12500);
  EXPECT_THAT(Value("dfv_queue_length"), Optional(2.0));
  EXPECT_THAT(Value("dfv_queue_oldest_age_seconds"), Optional(42.5));

  // Cancelling the older one: the queue's oldest is the newer one.
  ASSERT_TRUE(coordinator_->CancelJob("j-000001", "").ok());
  EXPECT_THAT(Value("dfv_queue_oldest_age_seconds"), Optional(12.5));
  EXPECT_THAT(Value("dfv_jobs", {{"state", "CANCELLED"}}), Optional(1.0));
  EXPECT_THAT(Value("dfv_jobs_finished_total", {{"state", "CANCELLED"}}), Optional(1.0));
}

TEST_F(CoordinatorMetricsTest, AJobRunToSuccessIsCountedAndTimedFromSubmission) {
  const std::string id = Submit(testing::JobYaml("happy"));
  clock_.AdvanceMs(2500);
  FakeWorker worker(coordinator_.get(), "w1", /*slots=*/2);
  worker.Register();
  ASSERT_TRUE(worker.Beat().ok());
  const dfv::v1::Assignment assignment = worker.running().at(0);
  EXPECT_THAT(Value("dfv_jobs", {{"state", "SCHEDULED"}}), Optional(1.0));
  EXPECT_THAT(Value("dfv_queue_length"), Optional(0.0));
  EXPECT_THAT(Value("dfv_queue_oldest_age_seconds"), Optional(0.0));
  EXPECT_THAT(Value("dfv_worker_slots", {{"state", "busy"}}), Optional(1.0));
  EXPECT_THAT(Value("dfv_worker_slots", {{"state", "free"}}), Optional(1.0));
  EXPECT_THAT(Value("dfv_workers", {{"state", "alive"}}), Optional(1.0));

  clock_.AdvanceMs(1500);
  ASSERT_TRUE(worker.Report(assignment, {Running()}).ok());
  std::vector<prometheus::MetricFamily> running = metrics_->Collect();
  EXPECT_THAT(SeriesValue(running, "dfv_jobs", {{"state", "RUNNING"}}), Optional(1.0));
  EXPECT_THAT(SeriesValue(running, "dfv_job_submit_to_running_seconds"), Optional(1.0));
  EXPECT_THAT(testing::HistogramSum(running, "dfv_job_submit_to_running_seconds"), Optional(4.0));

  ASSERT_TRUE(worker.Complete(assignment, dfv::v1::OUTCOME_SUCCEEDED).ok());
  std::vector<prometheus::MetricFamily> done = metrics_->Collect();
  EXPECT_THAT(SeriesValue(done, "dfv_jobs_finished_total", {{"state", "SUCCEEDED"}}), Optional(1.0));
  EXPECT_THAT(SeriesValue(done, "dfv_jobs", {{"state", "SUCCEEDED"}}), Optional(1.0));
  EXPECT_THAT(SeriesValue(done, "dfv_jobs", {{"state", "RUNNING"}}), Optional(0.0));
  EXPECT_THAT(SeriesValue(done, "dfv_worker_slots", {{"state", "busy"}}), Optional(0.0));
  EXPECT_THAT(SeriesValue(done, "dfv_worker_slots", {{"state", "free"}}), Optional(2.0));
  // QUEUED, SCHEDULED, RUNNING, SUCCEEDED.
  EXPECT_THAT(SeriesValue(done, "dfv_events_appended_total"), Optional(4.0));
}

TEST_F(CoordinatorMetricsTest, ALostWorkerExpiresALeaseAndRestartsItsJob) {
  const std::string id = Submit(testing::JobYaml("fragile"));
  FakeWorker a(coordinator_.get(), "a");
  a.Register();
  ASSERT_TRUE(a.Beat().ok());
  ASSERT_TRUE(a.Report(a.running().at(0), {Running()}).ok());

  LoseWorkers();
  std::vector<prometheus::MetricFamily> lost = metrics_->Collect();
  EXPECT_THAT(SeriesValue(lost, "dfv_worker_leases_expired_total"), Optional(1.0));
  EXPECT_THAT(SeriesValue(lost, "dfv_job_restarts_total", {{"reason", "worker_lost"}}),
              Optional(1.0));
  EXPECT_THAT(SeriesValue(lost, "dfv_job_restarts_total", {{"reason", "rank_failed"}}),
              Optional(0.0));
  EXPECT_THAT(SeriesValue(lost, "dfv_workers", {{"state", "lost"}}), Optional(1.0));
  EXPECT_THAT(SeriesValue(lost, "dfv_workers", {{"state", "alive"}}), Optional(0.0));
  EXPECT_THAT(SeriesValue(lost, "dfv_jobs", {{"state", "QUEUED"}}), Optional(1.0));

  // The second attempt's RUNNING is not a first RUNNING.
  FakeWorker b(coordinator_.get(), "b");
  b.Register();
  ASSERT_TRUE(b.Beat().ok());
  const dfv::v1::Assignment second = b.running().at(0);
  ASSERT_TRUE(b.Report(second, {Running()}).ok());
  EXPECT_THAT(Value("dfv_job_submit_to_running_seconds"), Optional(1.0));

  // A retryable failure is a restart of its own kind.
  ASSERT_TRUE(b.Complete(second, dfv::v1::OUTCOME_FAILED, "peer gone", /*retryable=*/true).ok());
  EXPECT_THAT(Value("dfv_job_restarts_total", {{"reason", "rank_failed"}}), Optional(1.0));
}

TEST_F(CoordinatorMetricsTest, UploadsCountWrittenAndStoredBytesAcrossARestart) {
  const std::string id = Submit(testing::JobYaml("artful"));
  FakeWorker worker(coordinator_.get(), "w1");
  worker.Register();
  ASSERT_TRUE(worker.Beat().ok());
  const dfv::v1::Assignment assignment = worker.running().at(0);
  ASSERT_TRUE(worker.Report(assignment, {Running()}).ok());
  ASSERT_TRUE(worker.Upload(assignment, "checkpoints/step-4.ckpt", dfv::v1::CHECKPOINT, 4,
                            std::string(1000, 'w'))
                  .ok());
  ASSERT_TRUE(worker.Upload(assignment, "report.json", dfv::v1::REPORT, 4, "{}").ok());
  EXPECT_THAT(Value("dfv_artifact_written_bytes_total"), Optional(1002.0));
  EXPECT_THAT(Value("dfv_artifact_stored_bytes"), Optional(1002.0));
  // The same name again replaces the stored file.
  ASSERT_TRUE(worker.Upload(assignment, "report.json", dfv::v1::REPORT, 4, "{\"a\":1}").ok());
  EXPECT_THAT(Value("dfv_artifact_written_bytes_total"), Optional(1009.0));
  EXPECT_THAT(Value("dfv_artifact_stored_bytes"), Optional(1007.0));

  // A new coordinator counts what is stored; the running job is requeued.
  Open();
  std::vector<prometheus::MetricFamily> reopened = metrics_->Collect();
  EXPECT_THAT(SeriesValue(reopened, "dfv_artifact_stored_bytes"), Optional(1007.0));
  EXPECT_THAT(SeriesValue(reopened, "dfv_artifact_written_bytes_total"), Optional(0.0));
  EXPECT_THAT(SeriesValue(reopened, "dfv_job_restarts_total", {{"reason", "coordinator_restarted"}}),
              Optional(1.0));
  EXPECT_THAT(SeriesValue(reopened, "dfv_jobs", {{"state", "QUEUED"}}), Optional(1.0));
  ASSERT_TRUE(coordinator_->CancelJob(id, "").ok());
  Open();
  EXPECT_THAT(Value("dfv_jobs", {{"state", "CANCELLED"}}), Optional(1.0));
  EXPECT_THAT(Value("dfv_jobs_finished_total", {{"state", "CANCELLED"}}), Optional(0.0));
}

TEST_F(CoordinatorMetricsTest, WatchersAreTheOpenSubscriptions) {
  const std::string id = Submit(testing::JobYaml("watched"));
  auto first = coordinator_->SubscribeEvents(id, [](const dfv::v1::JobEvent&) {});
  auto second = coordinator_->SubscribeEvents(id, [](const dfv::v1::JobEvent&) {});
  EXPECT_THAT(Value("dfv_watchers"), Optional(2.0));
  first.reset();
  EXPECT_THAT(Value("dfv_watchers"), Optional(1.0));
}

TEST_F(CoordinatorMetricsTest, TheMetricsOutliveTheCoordinator) {
  Submit(testing::JobYaml("gone"));
  coordinator_.reset();
  // The gauges keep their last values; nothing reads the Coordinator.
  EXPECT_THAT(Value("dfv_jobs_submitted_total"), Optional(1.0));
}

TEST_F(CoordinatorMetricsTest, TheSdFileListsTheLiveWorkersWithAMetricsAddress) {
  FakeWorker a(coordinator_.get(), "a");
  a.set_metrics_address("127.0.0.1:9101");
  FakeWorker b(coordinator_.get(), "b");
  b.set_metrics_address("127.0.0.1:9102");
  FakeWorker quiet(coordinator_.get(), "quiet");  // reports no metrics address
  a.Register();
  b.Register();
  quiet.Register();

  const std::string path = data_dir_ + "/workers.json";
  PrometheusSdFile file(path);
  ASSERT_TRUE(file.Update(coordinator_->MetricsTargets()).ok());
  auto read = [&] {
    absl::StatusOr<std::string> text = ReadFileToString(path);
    EXPECT_TRUE(text.ok()) << text.status();
    return nlohmann::json::parse(text.ok() ? *text : "null");
  };
  EXPECT_EQ(read(), nlohmann::json::parse(R"([
    {"targets": ["127.0.0.1:9101"], "labels": {"worker": "a"}},
    {"targets": ["127.0.0.1:9102"], "labels": {"worker": "b"}}])"));

  LoseWorkers({&b, &quiet});  // a stops heartbeating
  ASSERT_TRUE(file.Update(coordinator_->MetricsTargets()).ok());
  EXPECT_EQ(read(), nlohmann::json::parse(R"([
    {"targets": ["127.0.0.1:9102"], "labels": {"worker": "b"}}])"));

  // Unchanged: not rewritten.
  ASSERT_TRUE(WriteFileAtomically(path, "sentinel").ok());
  ASSERT_TRUE(file.Update(coordinator_->MetricsTargets()).ok());
  absl::StatusOr<std::string> kept = ReadFileToString(path);
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(*kept, "sentinel");
}

TEST(PrometheusSdFileTest, AnUnwritablePathIsAnErrorNamingTheFlag) {
  PrometheusSdFile file("/nonexistent-dir/workers.json");
  absl::Status status = file.Update({});
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), ::testing::StartsWith("--prometheus-sd-file: "));
  EXPECT_EQ(PrometheusSdJson({}), "[]\n");
}

}  // namespace
}  // namespace dfv::server
