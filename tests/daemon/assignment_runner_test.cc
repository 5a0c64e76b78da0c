// AssignmentRunner against the real trainer binary, with a recording
// CoordinatorLink in place of the coordinator.
#include "worker/daemon/assignment_runner.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/match.h"
#include "common/file_util.h"
#include "tests/daemon/fake_link.h"

namespace dfv::daemon {
namespace {

std::string SpritesJob(int max_steps) {
  return absl::StrFormat(R"(
name: runner-test
model: vae
dataset: {kind: sprites, image_size: 28, channels: 1, sprites_train: 256, sprites_test: 64, seed: 3}
train: {epochs: 1000, max_steps: %d, batch_size: 16, lr: 1.0e-3, seed: 5, threads: 1, log_every_steps: 10}
checkpoint: {every_steps: 10, keep_last: 2}
samples: {every_steps: 10}
)",
                         max_steps);
}

RunnerOptions Options(const std::string& name, const std::string& yaml, RecordingLink* link) {
  std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "runner_test" / name;
  std::filesystem::remove_all(dir);
  RunnerOptions options;
  options.assignment.set_job_id("j-000001");
  options.assignment.set_attempt(1);
  options.assignment.set_rank(0);
  options.assignment.set_world_size(1);
  options.assignment.set_spec_yaml(yaml);
  options.work_dir = dir.string();
  options.trainer_command = {DFV_WORKER_BINARY, "trainer"};
  options.link = link;
  options.retry_for = absl::Seconds(1);
  return options;
}

bool Finished(const AssignmentRunner& runner, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (!runner.finished() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  return runner.finished();
}

TEST(AssignmentRunner, TrainsAndRelaysEventsAndArtifacts) {
  RecordingLink link;
  RunnerOptions options = Options("success", SpritesJob(20), &link);
  auto runner = AssignmentRunner::Start(options);
  ASSERT_TRUE(Finished(*runner, absl::Seconds(120)));
  absl::MutexLock lock(&link.mu_);
  EXPECT_EQ(link.outcome_, v1::OUTCOME_SUCCEEDED) << link.reason_;
  EXPECT_EQ(link.completions_, 1);
  std::vector<int64_t> metric_steps;
  bool running = false;
  for (const auto& e : link.events_) {
    if (e.has_metrics()) metric_steps.push_back(e.metrics().step());
    if (e.has_state() && e.state().state() == v1::RUNNING) running = true;
  }
  EXPECT_TRUE(running);
  EXPECT_EQ(metric_steps, (std::vector<int64_t>{10, 20}));
  for (const char* name : {"job.yaml", "metrics.csv", "report.json", "trainer.log", "checkpoints/step-00000020.ckpt",
                           "grids/reconstruction-step00000020.png", "grids/random-step00000010.png"}) {
    EXPECT_TRUE(link.uploads_.count(name)) << name;
  }
  const auto& ckpt = link.uploads_["checkpoints/step-00000020.ckpt"];
  EXPECT_EQ(ckpt.first.kind(), v1::CHECKPOINT);
  EXPECT_EQ(ckpt.first.step(), 20);
  auto on_disk = ReadFileToString(options.work_dir + "/run/checkpoints/step-00000020.ckpt");
  ASSERT_TRUE(on_disk.ok());
  EXPECT_EQ(ckpt.second, *on_disk);
}

TEST(AssignmentRunner, ResumesFromADownloadedCheckpoint) {
  RecordingLink first;
  auto runner = AssignmentRunner::Start(Options("resume-a", SpritesJob(20), &first));
  ASSERT_TRUE(Finished(*runner, absl::Seconds(120)));
  RecordingLink second;
  {
    absl::MutexLock lock(&first.mu_);
    ASSERT_EQ(first.outcome_, v1::OUTCOME_SUCCEEDED) << first.reason_;
    second.downloadable_["checkpoints/step-00000020.ckpt"] = first.uploads_["checkpoints/step-00000020.ckpt"].second;
  }
  RunnerOptions options = Options("resume-b", SpritesJob(30), &second);
  options.assignment.set_attempt(2);
  options.assignment.set_resume_artifact("checkpoints/step-00000020.ckpt");
  runner = AssignmentRunner::Start(options);
  ASSERT_TRUE(Finished(*runner, absl::Seconds(120)));
  absl::MutexLock lock(&second.mu_);
  EXPECT_EQ(second.outcome_, v1::OUTCOME_SUCCEEDED) << second.reason_;
  std::vector<int64_t> metric_steps;
  for (const auto& e : second.events_) {
    if (e.has_metrics()) metric_steps.push_back(e.metrics().step());
  }
  EXPECT_EQ(metric_steps, (std::vector<int64_t>{30}));  // only the steps after 20
}

TEST(AssignmentRunner, CancelStopsTheTrainerWithinSeconds) {
  RecordingLink link;
  auto runner = AssignmentRunner::Start(Options("cancel", SpritesJob(1000000), &link));
  ASSERT_TRUE(link.WaitFor([&] { return link.SawState(v1::RUNNING); }, absl::Seconds(60)));
  absl::Time start = absl::Now();
  runner->Cancel("user asked");
  ASSERT_TRUE(Finished(*runner, absl::Seconds(10)));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  absl::MutexLock lock(&link.mu_);
  EXPECT_EQ(link.outcome_, v1::OUTCOME_CANCELLED);
  EXPECT_EQ(link.reason_, "user asked");
}

TEST(AssignmentRunner, CoordinatorEndingTheAttemptStopsTheTrainer) {
  RecordingLink link;
  {
    absl::MutexLock lock(&link.mu_);
    link.answer_cancel_ = true;  // every report is answered "stop"
  }
  auto runner = AssignmentRunner::Start(Options("ended", SpritesJob(1000000), &link));
  ASSERT_TRUE(Finished(*runner, absl::Seconds(60)));
  absl::MutexLock lock(&link.mu_);
  EXPECT_EQ(link.outcome_, v1::OUTCOME_CANCELLED);
}

TEST(AssignmentRunner, MissingDataFailsWithTheReason) {
  RecordingLink link;
  const std::string yaml = R"(
name: no-data
model: vae
dataset: {kind: fashion_mnist, path: /nonexistent/fashion}
train: {max_steps: 5, threads: 1}
)";
  auto runner = AssignmentRunner::Start(Options("fail", yaml, &link));
  ASSERT_TRUE(Finished(*runner, absl::Seconds(60)));
  absl::MutexLock lock(&link.mu_);
  EXPECT_EQ(link.outcome_, v1::OUTCOME_FAILED);
  EXPECT_TRUE(absl::StrContains(link.reason_, "/nonexistent/fashion")) << link.reason_;
  EXPECT_TRUE(link.uploads_.count("trainer.log"));
}

TEST(AssignmentRunner, MissingResumeCheckpointFails) {
  RecordingLink link;
  RunnerOptions options = Options("no-ckpt", SpritesJob(10), &link);
  options.assignment.set_resume_artifact("checkpoints/step-00000010.ckpt");
  auto runner = AssignmentRunner::Start(options);
  ASSERT_TRUE(Finished(*runner, absl::Seconds(30)));
  absl::MutexLock lock(&link.mu_);
  EXPECT_EQ(link.outcome_, v1::OUTCOME_FAILED);
  EXPECT_TRUE(absl::StrContains(link.reason_, "checkpoint")) << link.reason_;
}

TEST(AssignmentRunner, DestroyingAbandonsWithoutReporting) {
  RecordingLink link;
  auto runner = AssignmentRunner::Start(Options("abandon", SpritesJob(1000000), &link));
  ASSERT_TRUE(link.WaitFor([&] { return link.SawState(v1::RUNNING); }, absl::Seconds(60)));
  absl::Time start = absl::Now();
  runner.reset();
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  absl::MutexLock lock(&link.mu_);
  EXPECT_EQ(link.completions_, 0);
}

// A stand-in trainer: a shell script that prints reports (proto/trainer.proto
// in JSON, code 14 = UNAVAILABLE, 3 = INVALID_ARGUMENT). The runner's
// flags (--job, --rank, ...) arrive as the script's positional arguments.
RunnerOptions FakeTrainer(const std::string& name, const std::string& script, RecordingLink* link) {
  RunnerOptions options = Options(name, SpritesJob(10), link);
  options.trainer_command = {"/bin/sh", "-c", script, "fake-trainer"};
  return options;
}

TEST(AssignmentRunner, RankZeroPublishesItsRendezvousAndAPeerFailureIsRetryable) {
  RecordingLink link;
  RunnerOptions options = FakeTrainer("rendezvous", R"(
echo "{\"message\":{\"text\":\"args: $*\"}}"
echo '{"rendezvous":{"address":"127.0.0.1:41234"}}'
echo '{"error":{"code":14,"message":"all-reduce: peer rank 1 closed the connection"}}'
exit 1
)",
                                      &link);
  options.assignment.set_world_size(2);
  options.assignment.set_rendezvous("127.0.0.1:0");
  auto runner = AssignmentRunner::Start(options);
  ASSERT_TRUE(Finished(*runner, absl::Seconds(30)));
  absl::MutexLock lock(&link.mu_);
  EXPECT_EQ(link.rendezvous_, (std::vector<std::string>{"127.0.0.1:41234"}));
  EXPECT_EQ(link.outcome_, v1::OUTCOME_FAILED);
  EXPECT_EQ(link.reason_, "all-reduce: peer rank 1 closed the connection");
  EXPECT_TRUE(link.retryable_);
  ASSERT_FALSE(link.events_.empty());
  const std::string args = link.events_[0].message().text();
  EXPECT_TRUE(absl::StrContains(args, "--rank 0 --world-size 2")) << args;
  EXPECT_TRUE(absl::StrContains(args, "--rendezvous 127.0.0.1:0")) << args;
}

TEST(AssignmentRunner, OtherFailuresAreNotRetryableAndOnlyRankZeroPublishes) {
  RecordingLink link;
  RunnerOptions options = FakeTrainer("not-retryable", R"(
echo '{"rendezvous":{"address":"127.0.0.1:41234"}}'
echo '{"error":{"code":3,"message":"model.z_dim: must be > 0"}}'
exit 1
)",
                                      &link);
  options.assignment.set_rank(1);
  options.assignment.set_world_size(2);
  options.assignment.set_rendezvous("127.0.0.1:41234");
  auto runner = AssignmentRunner::Start(options);
  ASSERT_TRUE(Finished(*runner, absl::Seconds(30)));
  {
    absl::MutexLock lock(&link.mu_);
    EXPECT_TRUE(link.rendezvous_.empty()) << "rank 1 publishes nothing";
    EXPECT_EQ(link.outcome_, v1::OUTCOME_FAILED);
    EXPECT_FALSE(link.retryable_);
    EXPECT_TRUE(link.uploads_.count("trainer-rank1.log")) << "every rank's log is kept";
  }

  // A trainer that dies without an error line is the job's failure too.
  RecordingLink crashed;
  runner = AssignmentRunner::Start(FakeTrainer("crash", "echo oops >&2; exit 3", &crashed));
  ASSERT_TRUE(Finished(*runner, absl::Seconds(30)));
  absl::MutexLock lock(&crashed.mu_);
  EXPECT_EQ(crashed.outcome_, v1::OUTCOME_FAILED);
  EXPECT_FALSE(crashed.retryable_);
  EXPECT_TRUE(absl::StrContains(crashed.reason_, "oops")) << crashed.reason_;
}

TEST(AssignmentRunner, RetryableTrainerErrorsAreThoseNotCausedByTheJob) {
  EXPECT_TRUE(IsRetryableTrainerError(absl::UnavailableError("peer rank 1 is gone")));
  EXPECT_TRUE(IsRetryableTrainerError(absl::DeadlineExceededError("rendezvous: 1 of 2 ranks arrived")));
  EXPECT_TRUE(IsRetryableTrainerError(absl::AbortedError("collective aborted")));
  EXPECT_FALSE(IsRetryableTrainerError(absl::OkStatus()));
  EXPECT_FALSE(IsRetryableTrainerError(absl::NotFoundError("dataset.path")));
  EXPECT_FALSE(IsRetryableTrainerError(absl::InternalError("NaN loss")));
  EXPECT_FALSE(IsRetryableTrainerError(absl::ResourceExhaustedError("out of memory")));
}

}  // namespace
}  // namespace dfv::daemon
