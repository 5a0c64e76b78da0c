// The report spool on its own (order, batch numbers, what is dropped when it
// is full), and an AssignmentRunner whose coordinator is down while its
// trainer (a shell script speaking the trainer's line protocol) runs.
#include "worker/daemon/report_spool.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "tests/daemon/fake_link.h"
#include "worker/daemon/assignment_runner.h"

namespace dfv::daemon {
namespace {

namespace fs = std::filesystem;

constexpr absl::Duration kTimeout = absl::Seconds(20);

std::string TestDir() {
  const fs::path dir = fs::path(::testing::TempDir()) / "report_spool_test" /
                       ::testing::UnitTest::GetInstance()->current_test_info()->name();
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

v1::JobEvent MetricsRow(int64_t step) {
  v1::JobEvent event;
  event.mutable_metrics()->set_step(step);
  v1::MetricValue* value = event.mutable_metrics()->add_values();
  value->set_name("loss");
  value->set_value(1.0 / static_cast<double>(step + 1));
  return event;
}

v1::JobEvent RunningState() {
  v1::JobEvent event;
  event.mutable_state()->set_state(v1::RUNNING);
  return event;
}

std::string WriteArtifact(const std::string& dir, const std::string& name, const std::string& contents) {
  const std::string path = (fs::path(dir) / name).string();
  EXPECT_TRUE(WriteFileAtomically(path, contents).ok());
  return path;
}

// A report taken out of the spool, with its upload's file contents (the
// file goes with the report).
struct Drained : SpooledReport {
  std::string data;
};

// Everything the spool holds, front to back, popped.
std::vector<Drained> DrainAll(ReportSpool& spool) {
  std::vector<Drained> out;
  while (!spool.empty()) {
    absl::StatusOr<SpooledReport> report = spool.Front();
    EXPECT_TRUE(report.ok()) << report.status();
    if (!report.ok()) break;
    Drained drained;
    static_cast<SpooledReport&>(drained) = *report;
    if (report->kind == SpooledReport::Kind::kUpload) {
      absl::StatusOr<std::string> data = ReadFileToString(report->path);
      EXPECT_TRUE(data.ok()) << data.status();
      if (data.ok()) drained.data = *data;
    }
    out.push_back(std::move(drained));
    spool.Pop();
  }
  return out;
}

TEST(ReportSpool, KeepsOrderNumbersBatchesAndKeepsUploadsTheTrainerDeleted) {
  const std::string dir = TestDir();
  auto spool = ReportSpool::Create(dir + "/spool", 1 << 20);
  ASSERT_TRUE(spool.ok()) << spool.status();
  ASSERT_TRUE((*spool)->PushEvents({RunningState(), MetricsRow(1)}).ok());
  const std::string checkpoint = WriteArtifact(dir, "step-2.ckpt", "checkpoint bytes");
  v1::ArtifactInfo info;
  info.set_name("checkpoints/step-2.ckpt");
  info.set_kind(v1::CHECKPOINT);
  info.set_step(2);
  ASSERT_TRUE((*spool)->PushUpload(info, checkpoint).ok());
  fs::remove(checkpoint);  // keep_last removed it meanwhile
  ASSERT_TRUE((*spool)->PushEvents({MetricsRow(2)}).ok());
  ASSERT_TRUE((*spool)->PushCompletion(v1::OUTCOME_SUCCEEDED, "", false).ok());
  EXPECT_EQ((*spool)->size(), 4u);
  EXPECT_GT((*spool)->bytes(), 16);

  // Sent once and not taken: it stays at the front, the same.
  absl::StatusOr<SpooledReport> first = (*spool)->Front();
  ASSERT_TRUE(first.ok());
  (*spool)->MarkFrontSent();
  absl::StatusOr<SpooledReport> again = (*spool)->Front();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->batch, first->batch);
  EXPECT_EQ(again->events.size(), 2u);

  std::vector<Drained> reports = DrainAll(**spool);
  ASSERT_EQ(reports.size(), 4u);
  EXPECT_EQ(reports[0].kind, SpooledReport::Kind::kEvents);
  EXPECT_EQ(reports[0].batch, 1);
  EXPECT_TRUE(reports[0].events[0].has_state());
  EXPECT_EQ(reports[1].kind, SpooledReport::Kind::kUpload);
  EXPECT_EQ(reports[1].artifact.name(), "checkpoints/step-2.ckpt");
  EXPECT_EQ(reports[1].data, "checkpoint bytes");
  EXPECT_EQ(reports[2].batch, 2);
  EXPECT_EQ(reports[2].events[0].metrics().step(), 2);
  EXPECT_EQ(reports[3].kind, SpooledReport::Kind::kCompletion);
  EXPECT_EQ(reports[3].outcome, v1::OUTCOME_SUCCEEDED);
  EXPECT_EQ((*spool)->bytes(), 0);
  EXPECT_TRUE(fs::is_empty(dir + "/spool")) << "delivered reports leave no file behind";
}

TEST(ReportSpool, WhenFullDropsTheOldestMetricsRowsFirstAndSaysSo) {
  const std::string dir = TestDir();
  const int64_t row_bytes = static_cast<int64_t>(MetricsRow(100).ByteSizeLong()) + 2;
  // Room for the state change, a checkpoint, the outcome and about ten rows.
  const std::string checkpoint = WriteArtifact(dir, "step-5.ckpt", std::string(200, 'c'));
  auto spool = ReportSpool::Create(dir + "/spool", 400 + 10 * row_bytes);
  ASSERT_TRUE(spool.ok()) << spool.status();
  ASSERT_TRUE((*spool)->PushEvents({RunningState()}).ok());
  for (int64_t step = 1; step <= 40; ++step) {
    ASSERT_TRUE((*spool)->PushEvents({MetricsRow(step)}).ok());
    if (step == 5) {
      v1::ArtifactInfo info;
      info.set_name("checkpoints/step-5.ckpt");
      info.set_kind(v1::CHECKPOINT);
      ASSERT_TRUE((*spool)->PushUpload(info, checkpoint).ok());
    }
  }
  ASSERT_TRUE((*spool)->PushCompletion(v1::OUTCOME_SUCCEEDED, "", false).ok());
  EXPECT_LE((*spool)->bytes(), (*spool)->limit_bytes());
  EXPECT_GT((*spool)->dropped_rows(), 20);

  std::vector<int64_t> steps;
  std::vector<std::string> notes;
  bool state = false, checkpoint_kept = false, outcome = false;
  int64_t last_batch = 0;
  for (const Drained& report : DrainAll(**spool)) {
    if (report.kind == SpooledReport::Kind::kEvents) {
      EXPECT_GT(report.batch, last_batch) << "batch numbers rise in queue order";
      last_batch = report.batch;
    }
    for (const v1::JobEvent& event : report.events) {
      if (event.has_metrics()) steps.push_back(event.metrics().step());
      if (event.has_state()) state = true;
      if (event.has_message()) notes.push_back(event.message().text());
    }
    checkpoint_kept |= report.kind == SpooledReport::Kind::kUpload;
    outcome |= report.kind == SpooledReport::Kind::kCompletion;
  }
  EXPECT_TRUE(state) << "state changes are never dropped";
  EXPECT_TRUE(checkpoint_kept) << "checkpoints are never dropped";
  EXPECT_TRUE(outcome) << "the outcome is never dropped";
  // What is left are the newest rows, without a hole.
  ASSERT_FALSE(steps.empty());
  EXPECT_EQ(steps.back(), 40);
  for (size_t i = 1; i < steps.size(); ++i) EXPECT_EQ(steps[i], steps[i - 1] + 1);
  const int64_t dropped = steps.front() - 1;
  EXPECT_EQ((*spool)->dropped_rows(), dropped);
  // One note, amended as more rows went, naming how many and which steps.
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_TRUE(absl::StrContains(notes[0], absl::StrCat("dropped ", dropped, " metrics row(s) (steps 1-", dropped,
                                                       ")")))
      << notes[0];
}

TEST(ReportSpool, NeverDropsCheckpointsStateChangesOrTheOutcomeEvenPastItsLimit) {
  const std::string dir = TestDir();
  auto spool = ReportSpool::Create(dir + "/spool", 1);
  ASSERT_TRUE(spool.ok()) << spool.status();
  ASSERT_TRUE((*spool)->PushEvents({RunningState()}).ok());
  v1::ArtifactInfo info;
  info.set_name("checkpoints/step-1.ckpt");
  info.set_kind(v1::CHECKPOINT);
  ASSERT_TRUE((*spool)->PushUpload(info, WriteArtifact(dir, "c.ckpt", "ckpt")).ok());
  ASSERT_TRUE((*spool)->PushEvents({MetricsRow(1)}).ok());
  ASSERT_TRUE((*spool)->PushCompletion(v1::OUTCOME_FAILED, "boom", true).ok());
  std::vector<Drained> reports = DrainAll(**spool);
  ASSERT_EQ(reports.size(), 4u) << "state, checkpoint, the drop note, outcome";
  EXPECT_TRUE(reports[0].events.at(0).has_state());
  EXPECT_EQ(reports[1].kind, SpooledReport::Kind::kUpload);
  EXPECT_TRUE(absl::StrContains(reports[2].events.at(0).message().text(), "dropped 1 metrics row(s) (steps 1-1)"));
  EXPECT_EQ(reports[3].outcome, v1::OUTCOME_FAILED);
  EXPECT_EQ(reports[3].reason, "boom");
  EXPECT_TRUE(reports[3].retryable);
}

// A trainer that reports 30 steps of metrics (one row each), a checkpoint at
// step 10 that it deletes a second later, then finishes; it touches
// <work_dir>/trainer-done as it exits.
RunnerOptions ScriptedRunner(const std::string& dir, RecordingLink* link) {
  RunnerOptions options;
  options.assignment.set_job_id("j-000001");
  options.assignment.set_attempt(1);
  options.assignment.set_rank(0);
  options.assignment.set_world_size(1);
  options.assignment.set_spec_yaml("name: spool-test\n");
  options.work_dir = dir + "/work";
  options.link = link;
  options.retry_for = absl::Seconds(5);
  options.trainer_command = {"/bin/sh", "-c", R"(
out=""
while [ $# -gt 0 ]; do if [ "$1" = --out ]; then out=$2; fi; shift; done
echo '{"started":{"step":"0","totalSteps":"30"}}'
i=1
while [ $i -le 30 ]; do
  echo "{\"metrics\":{\"step\":\"$i\",\"values\":[{\"name\":\"loss\",\"value\":0.5}]}}"
  if [ $i = 10 ]; then
    mkdir -p "$out/checkpoints"
    printf 'checkpoint at 10' > "$out/checkpoints/step-10.ckpt"
    echo '{"artifact":{"kind":"CHECKPOINT","path":"checkpoints/step-10.ckpt","step":"10"}}'
    sleep 1
    rm "$out/checkpoints/step-10.ckpt"
  fi
  sleep 0.02
  i=$((i+1))
done
echo '{"finished":{"steps":"30"}}'
touch "$out/../trainer-done"
)",
                             "fake-trainer"};
  return options;
}

bool Finished(const AssignmentRunner& runner, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!runner.finished() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  return runner.finished();
}

TEST(ReportSpoolRunner, TheTrainerRunsOnWhileTheCoordinatorIsDownAndEverythingArrivesOnceInOrder) {
  const std::string dir = TestDir();
  RecordingLink link;
  {
    absl::MutexLock lock(&link.mu_);
    link.down_ = absl::UnavailableError("connection refused");
  }
  auto runner = AssignmentRunner::Start(ScriptedRunner(dir, &link));
  // The trainer runs to its end with the coordinator away.
  ASSERT_TRUE(link.WaitFor([&] { return fs::exists(dir + "/work/trainer-done"); }, kTimeout));
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_FALSE(runner->finished()) << "the outcome waits for the coordinator";
  EXPECT_TRUE(runner->started());
  EXPECT_FALSE(fs::exists(dir + "/work/run/checkpoints/step-10.ckpt"));
  {
    absl::MutexLock lock(&link.mu_);
    EXPECT_EQ(link.calls_, 0);
    // Back, but the first answer is lost after the batch was applied: the
    // re-send must not apply it twice.
    link.down_ = absl::OkStatus();
    link.lose_answers_ = 1;
  }
  ASSERT_TRUE(Finished(*runner, kTimeout));

  absl::MutexLock lock(&link.mu_);
  EXPECT_EQ(link.outcome_, v1::OUTCOME_SUCCEEDED) << link.reason_;
  EXPECT_EQ(link.completions_, 1);
  std::vector<std::string> expected = {"state"};
  for (int step = 1; step <= 30; ++step) {
    expected.push_back(absl::StrCat("metrics ", step));
    if (step == 10) expected.push_back("upload checkpoints/step-10.ckpt");
  }
  expected.push_back("upload trainer.log");
  expected.push_back("outcome");
  EXPECT_EQ(link.order_, expected);
  EXPECT_EQ(link.uploads_["checkpoints/step-10.ckpt"].second, "checkpoint at 10");
  EXPECT_GT(link.batches_.size(), 2u);
  EXPECT_EQ(link.batches_[0], link.batches_[1]) << "the batch whose answer was lost was sent again";
  EXPECT_TRUE(fs::is_empty(dir + "/work/spool"));
}

TEST(ReportSpoolRunner, AFullSpoolDropsTheOldestRowsAndReportsItButKeepsTheCheckpointAndTheOutcome) {
  const std::string dir = TestDir();
  RecordingLink link;
  {
    absl::MutexLock lock(&link.mu_);
    link.down_ = absl::UnavailableError("connection refused");
  }
  RunnerOptions options = ScriptedRunner(dir, &link);
  options.spool_bytes = 600;
  auto runner = AssignmentRunner::Start(options);
  ASSERT_TRUE(link.WaitFor([&] { return fs::exists(dir + "/work/trainer-done"); }, kTimeout));
  {
    absl::MutexLock lock(&link.mu_);
    link.down_ = absl::OkStatus();
  }
  ASSERT_TRUE(Finished(*runner, kTimeout));
  EXPECT_TRUE(link.SawState(v1::RUNNING));
  absl::MutexLock lock(&link.mu_);
  EXPECT_EQ(link.outcome_, v1::OUTCOME_SUCCEEDED);
  EXPECT_EQ(link.uploads_.count("checkpoints/step-10.ckpt"), 1u);
  std::vector<int64_t> steps;
  std::string note;
  for (const v1::JobEvent& event : link.events_) {
    if (event.has_metrics()) steps.push_back(event.metrics().step());
    if (event.has_message()) note = event.message().text();
  }
  ASSERT_FALSE(steps.empty());
  EXPECT_EQ(steps.back(), 30) << "the newest rows are kept";
  EXPECT_GT(steps.front(), 1) << "the oldest rows went";
  EXPECT_TRUE(absl::StrContains(note, absl::StrCat("dropped ", 30 - steps.size(), " metrics row(s) (steps 1-",
                                                   steps.front() - 1, ")")))
      << note;
}

}  // namespace
}  // namespace dfv::daemon
