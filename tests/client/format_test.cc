// Tests of dfvctl's printing: tables, details, event lines, the live line,
// JSON. Times are pinned (UTC, fixed "now") so every byte is checked.
#include "client/format.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"

namespace dfv::client {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// 2024-05-01 12:00:00 UTC.
constexpr int64_t kNoonMs = 1714564800000;

v1::Job SampleJob() {
  v1::Job job;
  job.set_id("j-000001");
  job.set_name("cyclevae-fashion");
  job.set_model("cycle_vae");
  job.set_state(v1::RUNNING);
  job.set_priority(5);
  job.set_attempt(2);
  job.set_max_restarts(3);
  job.set_world_size(2);
  job.add_workers("w1");
  job.add_workers("w2");
  job.set_created_ms(kNoonMs - 151000);
  job.set_updated_ms(kNoonMs - 5000);
  job.set_last_seq(42);
  job.mutable_progress()->set_step(1200);
  job.mutable_progress()->set_total_steps(5622);
  job.mutable_progress()->set_epoch(1);
  job.mutable_progress()->set_samples_per_second(1234.4);
  job.mutable_progress()->set_eta_seconds(215);
  job.set_spec_yaml("name: cyclevae-fashion\nmodel: cycle_vae\n");
  return job;
}

TEST(FormatDurationTest, PicksTheTwoLargestUnits) {
  EXPECT_EQ(FormatDuration(0), "0s");
  EXPECT_EQ(FormatDuration(45.4), "45s");
  EXPECT_EQ(FormatDuration(59.6), "1m00s");
  EXPECT_EQ(FormatDuration(151), "2m31s");
  EXPECT_EQ(FormatDuration(3720), "1h02m");
  EXPECT_EQ(FormatDuration(2 * 86400 + 4 * 3600 + 59), "2d04h");
}

TEST(FormatDurationTest, UnknownForNegativeOrNotFinite) {
  EXPECT_EQ(FormatDuration(-1), "?");
  EXPECT_EQ(FormatDuration(std::numeric_limits<double>::quiet_NaN()), "?");
  EXPECT_EQ(FormatDuration(std::numeric_limits<double>::infinity()), "?");
}

TEST(FormatBytesTest, BinaryUnits) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(1023), "1023 B");
  EXPECT_EQ(FormatBytes(12595), "12.3 KiB");
  EXPECT_EQ(FormatBytes(4 << 20), "4.0 MiB");
  EXPECT_EQ(FormatBytes(int64_t{3} << 30), "3.0 GiB");
}

TEST(NamesTest, StatesKindsAndFinality) {
  EXPECT_EQ(JobStateName(v1::SUCCEEDED), "SUCCEEDED");
  EXPECT_EQ(JobStateName(v1::JOB_STATE_UNSPECIFIED), "UNKNOWN");
  EXPECT_EQ(JobStateName(static_cast<v1::JobState>(99)), "UNKNOWN");
  EXPECT_EQ(ArtifactKindName(v1::CHECKPOINT), "checkpoint");
  EXPECT_EQ(ArtifactKindName(v1::JOB_SPEC), "job");
  EXPECT_EQ(ArtifactKindName(v1::ARTIFACT_KIND_UNSPECIFIED), "artifact");
  EXPECT_EQ(WorkerStateName(v1::WORKER_LOST), "lost");
  EXPECT_TRUE(IsFinalState(v1::FAILED));
  EXPECT_TRUE(IsFinalState(v1::CANCELLED));
  EXPECT_FALSE(IsFinalState(v1::RUNNING));
  EXPECT_FALSE(IsFinalState(v1::QUEUED));
}

TEST(FormatTableTest, AlignsColumnsWithoutTrailingBlanks) {
  EXPECT_EQ(FormatTable({"A", "LONGER", "C"}, {{"wide-cell", "x", "y"}, {"b", "", ""}}),
            "A          LONGER  C\n"
            "wide-cell  x       y\n"
            "b\n");
}

TEST(FormatTableTest, HeaderOnlyWhenNoRows) {
  EXPECT_EQ(FormatTable({"ID", "NAME"}, {}), "ID  NAME\n");
}

TEST(FormatStepProgressTest, WithAndWithoutTotal) {
  v1::Progress p;
  EXPECT_EQ(FormatStepProgress(p), "-");
  p.set_step(300);
  EXPECT_EQ(FormatStepProgress(p), "300");
  p.set_total_steps(1200);
  EXPECT_EQ(FormatStepProgress(p), "300/1200 25%");
}

TEST(FormatJobTableTest, OneRowPerJob) {
  v1::Job queued;
  queued.set_id("j-000002");
  queued.set_name("vae-mnist");
  queued.set_model("vae");
  queued.set_state(v1::QUEUED);
  queued.set_created_ms(kNoonMs - 4000);
  EXPECT_EQ(
      FormatJobTable({SampleJob(), queued}, kNoonMs),
      "ID        NAME              MODEL      STATE    PRIORITY  ATTEMPT  PROGRESS       AGE\n"
      "j-000001  cyclevae-fashion  cycle_vae  RUNNING  5         2        1200/5622 21%  2m31s\n"
      "j-000002  vae-mnist         vae        QUEUED   0         0        -              4s\n");
}

TEST(FormatJobDetailsTest, EveryFieldThenTheSpec) {
  v1::Job job = SampleJob();
  job.set_reason("worker w3 lost");
  EXPECT_EQ(FormatJobDetails(job, kNoonMs, absl::UTCTimeZone()),
            "id:         j-000001\n"
            "name:       cyclevae-fashion\n"
            "model:      cycle_vae\n"
            "state:      RUNNING\n"
            "reason:     worker w3 lost\n"
            "priority:   5\n"
            "attempt:    2 (restarts allowed: 3)\n"
            "world size: 2\n"
            "workers:    w1, w2\n"
            "progress:   1200/5622 21%, epoch 1, 1234 samples/s, ETA 3m35s\n"
            "created:    2024-05-01 11:57:29 (2m31s ago)\n"
            "updated:    2024-05-01 11:59:55 (5s ago)\n"
            "last event: #42\n"
            "spec:\n"
            "  name: cyclevae-fashion\n"
            "  model: cycle_vae\n");
}

TEST(FormatJobTableTest, EvaluationJobsAddAColumnNamingWhatTheyEvaluate) {
  v1::Job eval;
  eval.set_id("j-000002");
  eval.set_name("cyclevae-fashion-eval");
  eval.set_model("cycle_vae");
  eval.set_state(v1::QUEUED);
  eval.set_created_ms(kNoonMs - 4000);
  eval.mutable_evaluates()->set_job_id("j-000001");
  eval.mutable_evaluates()->set_checkpoint("checkpoints/step-00000060.ckpt");
  eval.mutable_evaluates()->set_step(60);
  EXPECT_EQ(
      FormatJobTable({SampleJob(), eval}, kNoonMs),
      "ID        NAME                   MODEL      STATE    PRIORITY  ATTEMPT  PROGRESS       AGE    EVALUATES\n"
      "j-000001  cyclevae-fashion       cycle_vae  RUNNING  5         2        1200/5622 21%  2m31s  -\n"
      "j-000002  cyclevae-fashion-eval  cycle_vae  QUEUED   0         0        -              4s     j-000001 step 60\n");
  EXPECT_THAT(FormatJobDetails(eval, kNoonMs, absl::UTCTimeZone()),
              HasSubstr("model:      cycle_vae\n"
                        "evaluates:  j-000001 checkpoints/step-00000060.ckpt (step 60)\n"
                        "state:      QUEUED\n"));
}

TEST(FormatJobDetailsTest, FinishedJobHasNoEta) {
  v1::Job job = SampleJob();
  job.set_state(v1::SUCCEEDED);
  EXPECT_THAT(FormatJobDetails(job, kNoonMs, absl::UTCTimeZone()), Not(HasSubstr("ETA")));
}

TEST(FormatArtifactTableTest, NameKindStepSizeAttempt) {
  v1::ArtifactInfo grid;
  grid.set_name("grids/swap-step00000500.png");
  grid.set_kind(v1::GRID);
  grid.set_step(500);
  grid.set_size(12595);
  grid.set_attempt(1);
  v1::ArtifactInfo report;
  report.set_name("report.json");
  report.set_kind(v1::REPORT);
  report.set_step(5622);
  report.set_size(800);
  report.set_attempt(2);
  EXPECT_EQ(FormatArtifactTable({grid, report}),
            "NAME                         KIND    STEP  SIZE      ATTEMPT\n"
            "grids/swap-step00000500.png  grid    500   12.3 KiB  1\n"
            "report.json                  report  5622  800 B     2\n");
}

TEST(FormatWorkerTableTest, SlotsHeartbeatAndJobs) {
  v1::WorkerInfo busy;
  busy.set_id("wk-1");
  busy.set_name("gpu-a");
  busy.set_device("cuda");
  busy.set_slots(2);
  busy.set_free_slots(1);
  busy.set_state(v1::WORKER_ALIVE);
  busy.set_address("10.0.0.5:7071");
  busy.set_last_heartbeat_ms(kNoonMs - 2000);
  busy.add_job_ids("j-000001");
  v1::WorkerInfo lost;
  lost.set_id("wk-2");
  lost.set_name("cpu-b");
  lost.set_device("cpu");
  lost.set_slots(1);
  lost.set_state(v1::WORKER_LOST);
  EXPECT_EQ(FormatWorkerTable({busy, lost}, kNoonMs),
            "ID    NAME   DEVICE  SLOTS  STATE  ADDRESS        HEARTBEAT  JOBS\n"
            "wk-1  gpu-a  cuda    1/2    alive  10.0.0.5:7071  2s ago     j-000001\n"
            "wk-2  cpu-b  cpu     0/1    lost                  -          -\n");
}

TEST(FormatEventLineTest, EveryPayload) {
  const absl::TimeZone utc = absl::UTCTimeZone();
  v1::JobEvent event;
  event.set_seq(7);
  event.set_time_ms(kNoonMs + 3000);

  event.mutable_state()->set_state(v1::RUNNING);
  event.mutable_state()->set_attempt(1);
  event.mutable_state()->add_workers("w1");
  event.mutable_state()->add_workers("w2");
  EXPECT_EQ(FormatEventLine(event, utc), "12:00:03 #7 state RUNNING attempt 1 on w1,w2");

  event.mutable_state()->clear_workers();
  event.mutable_state()->set_state(v1::QUEUED);
  event.mutable_state()->set_attempt(2);
  event.mutable_state()->set_reason("worker w1 lost");
  EXPECT_EQ(FormatEventLine(event, utc), "12:00:03 #7 state QUEUED attempt 2: worker w1 lost");

  v1::MetricsRow* row = event.mutable_metrics();
  row->set_step(500);
  row->set_epoch(1);
  auto* loss = row->add_values();
  loss->set_name("loss");
  loss->set_value(0.031234);
  auto* kl = row->add_values();
  kl->set_name("kl");
  kl->set_value(0.12);
  EXPECT_EQ(FormatEventLine(event, utc),
            "12:00:03 #7 metrics step 500 epoch 1: loss 0.03123 kl 0.12");

  v1::Progress* p = event.mutable_progress();
  p->set_step(600);
  p->set_total_steps(5622);
  p->set_epoch(1);
  p->set_samples_per_second(1234.4);
  p->set_eta_seconds(215);
  EXPECT_EQ(FormatEventLine(event, utc),
            "12:00:03 #7 progress step 600/5622 (10.7%) epoch 1, 1234 samples/s, ETA 3m35s");

  v1::ArtifactInfo* a = event.mutable_artifact();
  a->set_name("checkpoints/step-500.ckpt");
  a->set_kind(v1::CHECKPOINT);
  a->set_step(500);
  a->set_size(int64_t{5} << 20);
  EXPECT_EQ(FormatEventLine(event, utc),
            "12:00:03 #7 artifact checkpoint checkpoints/step-500.ckpt step 500 (5.0 MiB)");

  event.mutable_message()->set_text("evaluation started");
  EXPECT_EQ(FormatEventLine(event, utc), "12:00:03 #7 message evaluation started");

  event.clear_payload();
  event.set_time_ms(0);  // no time: no clock column
  EXPECT_EQ(FormatEventLine(event, utc), "#7 (empty event)");
}

TEST(FormatFinalStateTest, WithAndWithoutReason) {
  v1::Job job;
  job.set_id("j-000003");
  job.set_state(v1::SUCCEEDED);
  EXPECT_EQ(FormatFinalState(job), "j-000003 SUCCEEDED");
  job.set_state(v1::FAILED);
  job.set_reason("checkpoint step-500.ckpt is corrupt");
  EXPECT_EQ(FormatFinalState(job), "j-000003 FAILED: checkpoint step-500.ckpt is corrupt");
}

TEST(ProgressBarTest, FillsByFractionAndClamps) {
  EXPECT_EQ(ProgressBar(0.0, 10), "[----------]");
  EXPECT_EQ(ProgressBar(0.25, 10), "[##--------]");
  EXPECT_EQ(ProgressBar(1.0, 10), "[##########]");
  EXPECT_EQ(ProgressBar(1.7, 4), "[####]");
  EXPECT_EQ(ProgressBar(-3, 4), "[----]");
  EXPECT_EQ(ProgressBar(std::nan(""), 4), "[----]");
}

TEST(IsTimingMetricTest, SecondsAndThroughputAreNotLosses) {
  EXPECT_TRUE(IsTimingMetric("samples_per_second"));
  EXPECT_TRUE(IsTimingMetric("step_time_seconds"));
  EXPECT_TRUE(IsTimingMetric("allreduce_seconds"));
  EXPECT_FALSE(IsTimingMetric("kl"));
  EXPECT_FALSE(IsTimingMetric("d_accuracy"));
}

TEST(RenderProgressLineTest, StateStepsBarLossesThroughputEta) {
  LiveStatus status;
  status.state = v1::RUNNING;
  status.step = 1200;
  status.total_steps = 5622;
  status.epoch = 1;
  status.samples_per_second = 1234.4;
  status.eta_seconds = 215;
  status.losses = {{"loss", 0.0312}, {"kl", 0.12}};
  EXPECT_EQ(RenderProgressLine(status, 0),
            "RUNNING 1200/5622 [####----------------]  21.3% epoch 1 | loss 0.0312 kl 0.12 | "
            "1234 samples/s | ETA 3m35s");
}

TEST(RenderProgressLineTest, BeforeTheFirstStepOnlyTheState) {
  LiveStatus status;
  status.state = v1::QUEUED;
  EXPECT_EQ(RenderProgressLine(status, 80), "QUEUED");
}

TEST(RenderProgressLineTest, CutToTheTerminalWidth) {
  LiveStatus status;
  status.state = v1::RUNNING;
  status.step = 10;
  status.total_steps = 100;
  status.losses = {{"reconstruction", 1}, {"reverse_cycle", 2}, {"kl", 3}};
  const std::string line = RenderProgressLine(status, 30);
  EXPECT_EQ(line.size(), 30u);
  EXPECT_EQ(line, "RUNNING 10/100 [##------------");
}

TEST(RenderProgressLineTest, FinishedJobShowsNoEta) {
  LiveStatus status;
  status.state = v1::SUCCEEDED;
  status.step = 100;
  status.total_steps = 100;
  status.eta_seconds = 0;
  EXPECT_THAT(RenderProgressLine(status, 0), Not(HasSubstr("ETA")));
  EXPECT_THAT(RenderProgressLine(status, 0), HasSubstr("[####################] 100.0%"));
}

TEST(ToJsonTest, CompactUsesEnumNamesAndPrintsDefaults) {
  v1::JobEvent event;
  event.set_job_id("j-000001");
  event.set_seq(3);
  event.mutable_state()->set_state(v1::QUEUED);
  absl::StatusOr<std::string> json = ToJson(event, /*pretty=*/false);
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(
      *json,
      "{\"jobId\":\"j-000001\",\"seq\":\"3\",\"timeMs\":\"0\",\"state\":{\"state\":\"QUEUED\","
      "\"attempt\":0,\"reason\":\"\",\"workers\":[]}}");
}

TEST(ToJsonTest, PrettyRoundTrips) {
  const v1::Job job = SampleJob();
  absl::StatusOr<std::string> json = ToJson(job, /*pretty=*/true);
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_THAT(*json, HasSubstr("\n"));
  EXPECT_NE(json->back(), '\n');
  EXPECT_THAT(*json, HasSubstr("\"state\": \"RUNNING\""));
  v1::Job parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(*json, &parsed).ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(job, parsed));
}

}  // namespace
}  // namespace dfv::client
