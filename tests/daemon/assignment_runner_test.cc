// AssignmentRunner against the real trainer binary, with a recording
// CoordinatorLink in place of the coordinator.
#include "worker/daemon/assignment_runner.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/match.h"
#include "common/file_util.h"
#include "tests/daemon/fake_link.h"
#include "worker/daemon/metrics.h"

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
  options.trainer_command = {DFV_TRAINER_BINARY, "assignment"};
  options.link = link;
  options.retry_for = absl::Seconds(1);
  return options;
}

// The sample of family `name` whose labels are exactly `labels`, from a
// scrape of `metrics`.
std::optional<prometheus::ClientMetric> Sample(const WorkerMetrics& metrics, const std::string& name,
                                               const std::map<std::string, std::string>& labels) {
  for (const auto& family : metrics.Collect()) {
    if (family.name != name) continue;
    for (const auto& metric : family.metric) {
      std::map<std::string, std::string> have;
      for (const auto& label : metric.label) have[label.name] = label.value;
      if (have == labels) return metric;
    }
  }
  return std::nullopt;
}

const std::map<std::string, std::string> kJob = {{"job_id", "j-000001"}, {"rank", "0"}};

bool Finished(const AssignmentRunner& runner, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (!runner.finished() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  return runner.finished();
}

TEST(AssignmentRunner, TrainsAndRelaysEventsAndArtifacts) {
  RecordingLink link;
  WorkerMetrics metrics(WorkerMetricsOptions{});
  RunnerOptions options = Options("success", SpritesJob(20), &link);
  options.metrics = &metrics;
  auto runner = AssignmentRunner::Start(options);
  ASSERT_TRUE(Finished(*runner, absl::Seconds(120)));

  // The real trainer's timings reached the worker's metrics: every step's
  // time, both checkpoints' sizes, the vae's loss terms.
  EXPECT_EQ(Sample(metrics, "dfv_job_step_seconds", kJob)->histogram.sample_count, 20u);
  EXPECT_EQ(Sample(metrics, "dfv_job_step", kJob)->gauge.value, 20);
  EXPECT_EQ(Sample(metrics, "dfv_job_total_steps", kJob)->gauge.value, 20);
  EXPECT_GT(Sample(metrics, "dfv_job_samples_per_second", kJob)->gauge.value, 0);
  EXPECT_GT(Sample(metrics, "dfv_job_data_wait_seconds_total", kJob)->counter.value, 0);
  EXPECT_GT(Sample(metrics, "dfv_job_checkpoint_write_seconds_total", kJob)->counter.value, 0);
  auto with_term = kJob;
  with_term["term"] = "loss";
  EXPECT_GT(Sample(metrics, "dfv_job_training_metric", with_term)->gauge.value, 0);
  EXPECT_GT(Sample(metrics, "dfv_trainer_cpu_seconds_total", kJob)->counter.value, 0);
  EXPECT_EQ(Sample(metrics, "dfv_trainers_ended_total", {{"outcome", "succeeded"}})->counter.value, 1);

  absl::MutexLock lock(&link.mu_);
  int64_t checkpoint_bytes = 0;
  for (const auto& [name, upload] : link.uploads_) {
    if (upload.first.kind() == v1::CHECKPOINT) checkpoint_bytes += static_cast<int64_t>(upload.second.size());
  }
  EXPECT_GT(checkpoint_bytes, 0);
  EXPECT_EQ(Sample(metrics, "dfv_job_checkpoint_written_bytes_total", kJob)->counter.value, checkpoint_bytes);
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

TEST(AssignmentRunner, HandsItsAssignmentToAPrestartedTrainer) {
  RecordingLink link;
  RunnerOptions options = Options("prestarted", SpritesJob(10), &link);
  std::filesystem::create_directories(options.work_dir);
  SpawnOptions spawn;
  spawn.argv = {DFV_TRAINER_BINARY, "assignment", "--prestarted"};
  spawn.stderr_path = options.work_dir + "/prestarted.log";
  spawn.stdin_pipe = true;
  auto prestarted = Subprocess::Spawn(spawn);
  ASSERT_TRUE(prestarted.ok()) << prestarted.status();
  options.prestarted = std::move(*prestarted);
  options.prestarted_log = spawn.stderr_path;
  auto runner = AssignmentRunner::Start(options);
  ASSERT_TRUE(Finished(*runner, absl::Seconds(120)));
  absl::MutexLock lock(&link.mu_);
  EXPECT_EQ(link.outcome_, v1::OUTCOME_SUCCEEDED) << link.reason_;
  EXPECT_TRUE(link.uploads_.count("checkpoints/step-00000010.ckpt"));
  // Its log became the assignment's trainer.log (and was uploaded).
  EXPECT_FALSE(std::filesystem::exists(spawn.stderr_path));
  EXPECT_TRUE(std::filesystem::exists(options.work_dir + "/trainer.log"));
  EXPECT_TRUE(link.uploads_.count("trainer.log"));
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

TEST(AssignmentRunner, DataOutsideTheDataRootsFailsAtOnceWithTheReasonAndIsNotRetried) {
  RecordingLink link;
  const std::string root = (std::filesystem::path(::testing::TempDir()) / "runner_test" / "data-root").string();
  // A folder that does not exist: had the trainer opened it, it would say
  // NOT_FOUND; it names the roots instead.
  const std::string yaml = absl::StrCat(R"(
name: outside
model: vae
dataset: {kind: fashion_mnist, path: )", root, R"(/../elsewhere/fashion}
train: {max_steps: 5, threads: 1}
)");
  RunnerOptions options = Options("outside-roots", yaml, &link);
  options.data_roots = {root};
  auto runner = AssignmentRunner::Start(options);
  ASSERT_TRUE(Finished(*runner, absl::Seconds(60)));
  absl::MutexLock lock(&link.mu_);
  EXPECT_EQ(link.outcome_, v1::OUTCOME_FAILED);
  EXPECT_FALSE(link.retryable_) << "it would fail the same way";
  EXPECT_TRUE(absl::StrContains(link.reason_, "dataset.path: " + root + "/../elsewhere/fashion")) << link.reason_;
  EXPECT_TRUE(absl::StrContains(link.reason_, "lies outside this worker's data roots (" + root + ")"))
      << link.reason_;
  for (const auto& e : link.events_) EXPECT_FALSE(e.has_state() && e.state().state() == v1::RUNNING);
  EXPECT_TRUE(IsRetryableTrainerError(absl::UnavailableError("x")));
  EXPECT_FALSE(IsRetryableTrainerError(absl::PermissionDeniedError(link.reason_)));
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

TEST(AssignmentRunner, TheSecretGoesInTheEnvironmentAndTheDataPlaneOnTheCommandLine) {
  RecordingLink link;
  RunnerOptions options = FakeTrainer("secret", R"(
echo "{\"message\":{\"text\":\"args: $*\"}}"
echo "{\"message\":{\"text\":\"env: $DFV_RENDEZVOUS_SECRET $NCCL_SOCKET_IFNAME\"}}"
exit 1
)",
                                      &link);
  options.assignment.set_rank(1);
  options.assignment.set_world_size(2);
  options.assignment.set_rendezvous("10.0.0.1:41234");
  options.assignment.set_rendezvous_secret("0123456789abcdef0123456789abcdef");
  options.data_roots = {"/srv/data", "/usr/share/datasets"};
  options.data_plane_address = "192.0.2.7";
  options.data_plane_interface = "eth1";
  auto runner = AssignmentRunner::Start(options);
  ASSERT_TRUE(Finished(*runner, absl::Seconds(30)));
  absl::MutexLock lock(&link.mu_);
  ASSERT_GE(link.events_.size(), 2u);
  const std::string args = link.events_[0].message().text();
  EXPECT_TRUE(absl::StrContains(args, "--data-root /srv/data --data-root /usr/share/datasets")) << args;
  EXPECT_TRUE(absl::StrContains(args, "--rendezvous 10.0.0.1:41234 --data-plane-address 192.0.2.7")) << args;
  EXPECT_FALSE(absl::StrContains(args, "0123456789abcdef")) << args;
  EXPECT_EQ(link.events_[1].message().text(), "env: 0123456789abcdef0123456789abcdef eth1");
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

TEST(AssignmentRunner, TheTrainersFiguresReachTheWorkersMetrics) {
  RecordingLink link;
  WorkerMetrics metrics(WorkerMetricsOptions{});
  // $4 is the run folder (after --job FILE --out). The trainer writes a
  // checkpoint of 1000 bytes, then waits for the test's go-ahead so the test
  // can read its process figures while it runs.
  RunnerOptions options = FakeTrainer("figures", R"(
run="$4"
echo '{"started":{"step":"0","totalSteps":"20"}}'
echo '{"metrics":{"step":"10","values":[{"name":"loss","value":1.5},{"name":"kl","value":0.25},{"name":"step_time_seconds","value":0.1},{"name":"samples_per_second","value":640}]}}'
echo '{"window":{"step":"10","stepSeconds":[0.004,0.02,0.3],"dataWaitSeconds":0.5,"allreduceSeconds":0.25,"allreduceBytes":"4096"}}'
mkdir -p "$run/checkpoints" && head -c 1000 /dev/zero > "$run/checkpoints/step-00000010.ckpt"
echo '{"artifact":{"kind":"CHECKPOINT","path":"checkpoints/step-00000010.ckpt","step":"10","writeSeconds":0.125}}'
echo '{"progress":{"progress":{"step":"15","totalSteps":"20","stepSeconds":0.1}}}'
while [ ! -e "$run/go" ]; do sleep 0.02; done
echo '{"finished":{"steps":"20"}}'
)",
                                      &link);
  options.metrics = &metrics;
  auto runner = AssignmentRunner::Start(options);
  ASSERT_TRUE(link.WaitFor(
      [&] {
        auto step = Sample(metrics, "dfv_job_step", kJob);
        return step && step->gauge.value == 15;
      },
      absl::Seconds(30)));
  EXPECT_EQ(Sample(metrics, "dfv_trainers_started_total", {})->counter.value, 1);
  EXPECT_EQ(Sample(metrics, "dfv_job_total_steps", kJob)->gauge.value, 20);
  EXPECT_EQ(Sample(metrics, "dfv_job_samples_per_second", kJob)->gauge.value, 640);
  auto term = [&](const std::string& name) {
    auto labels = kJob;
    labels["term"] = name;
    return Sample(metrics, "dfv_job_training_metric", labels);
  };
  EXPECT_EQ(term("loss")->gauge.value, 1.5);
  EXPECT_EQ(term("kl")->gauge.value, 0.25);
  EXPECT_FALSE(term("step_time_seconds")) << "the trainer's own figures are not loss terms";
  auto histogram = Sample(metrics, "dfv_job_step_seconds", kJob);
  EXPECT_EQ(histogram->histogram.sample_count, 3u);
  EXPECT_EQ(histogram->histogram.bucket.front().cumulative_count, 1u) << "0.004 s <= 0.005 s";
  EXPECT_EQ(Sample(metrics, "dfv_job_data_wait_seconds_total", kJob)->counter.value, 0.5);
  EXPECT_EQ(Sample(metrics, "dfv_job_allreduce_seconds_total", kJob)->counter.value, 0.25);
  EXPECT_EQ(Sample(metrics, "dfv_job_allreduce_bytes_total", kJob)->counter.value, 4096);
  EXPECT_EQ(Sample(metrics, "dfv_job_checkpoint_write_seconds_total", kJob)->counter.value, 0.125);
  EXPECT_EQ(Sample(metrics, "dfv_job_checkpoint_written_bytes_total", kJob)->counter.value, 1000);
  auto rss = Sample(metrics, "dfv_trainer_resident_memory_bytes", kJob);
  ASSERT_TRUE(rss) << "the trainer runs: its RSS is read at each scrape";
  EXPECT_GT(rss->gauge.value, 0);

  ASSERT_TRUE(WriteFileAtomically(options.work_dir + "/run/go", "").ok());
  ASSERT_TRUE(Finished(*runner, absl::Seconds(30)));
  EXPECT_FALSE(Sample(metrics, "dfv_trainer_resident_memory_bytes", kJob)) << "no RSS once the trainer is gone";
  EXPECT_TRUE(Sample(metrics, "dfv_trainer_cpu_seconds_total", kJob)) << "its CPU time stays until the grace ends";
  EXPECT_EQ(Sample(metrics, "dfv_trainers_ended_total", {{"outcome", "succeeded"}})->counter.value, 1);
  absl::MutexLock lock(&link.mu_);
  EXPECT_EQ(link.outcome_, v1::OUTCOME_SUCCEEDED) << link.reason_;
  int metric_events = 0, progress_events = 0;
  for (const auto& e : link.events_) {
    metric_events += e.has_metrics();
    progress_events += e.has_progress();
  }
  EXPECT_EQ(metric_events, 1);
  EXPECT_EQ(progress_events, 1);
  EXPECT_EQ(link.uploads_.count("checkpoints/step-00000010.ckpt"), 1u);
}

// 60 metrics rows 10 ms apart (about 0.6 s): they reach the coordinator in
// order, in a handful of reports instead of 60; the first row goes at once,
// with nothing held back; a message goes at once with the rows held before it.
TEST(AssignmentRunner, MetricsRowsGoInFewReportsAndInOrder) {
  RecordingLink link;
  RunnerOptions options = FakeTrainer("rows", R"(
echo '{"started":{"step":"0","totalSteps":"600"}}'
i=1
while [ $i -le 60 ]; do
  echo "{\"metrics\":{\"step\":\"$((i * 10))\",\"values\":[{\"name\":\"loss\",\"value\":$i}]}}"
  if [ $i -eq 30 ]; then echo '{"message":{"text":"half way"}}'; fi
  sleep 0.01
  i=$((i + 1))
done
echo '{"finished":{"steps":"600"}}'
)",
                                      &link);
  auto runner = AssignmentRunner::Start(options);
  ASSERT_TRUE(Finished(*runner, absl::Seconds(30)));
  absl::MutexLock lock(&link.mu_);
  EXPECT_EQ(link.outcome_, v1::OUTCOME_SUCCEEDED) << link.reason_;
  std::vector<int64_t> steps;
  bool message_after_row_30 = false;
  for (const auto& e : link.events_) {
    if (e.has_metrics()) steps.push_back(e.metrics().step());
    if (e.has_message()) message_after_row_30 = steps.size() == 30;
  }
  ASSERT_EQ(steps.size(), 60u);
  for (size_t i = 0; i < steps.size(); ++i) EXPECT_EQ(steps[i], 10 * static_cast<int64_t>(i + 1));
  EXPECT_TRUE(message_after_row_30);
  // 0.6 s of rows at most every 250 ms, plus the message's report and the
  // first row's: far fewer than one report a row.
  const int reports = static_cast<int>(link.batches_.size());
  EXPECT_LE(reports, 15) << reports << " reports for 60 rows";
  EXPECT_GE(reports, 3) << "the rows must not all wait for the end";
}

TEST(AssignmentRunner, TrainersThatFailOrAreCancelledAreCountedByOutcome) {
  RecordingLink link;
  WorkerMetrics metrics(WorkerMetricsOptions{});
  RunnerOptions failing = FakeTrainer("failing", "echo '{\"started\":{}}'; exit 1", &link);
  failing.metrics = &metrics;
  auto runner = AssignmentRunner::Start(failing);
  ASSERT_TRUE(Finished(*runner, absl::Seconds(30)));
  RecordingLink cancelled_link;
  RunnerOptions cancelled =
      FakeTrainer("cancelled", "echo '{\"started\":{}}'; exec sleep 30", &cancelled_link);
  cancelled.assignment.set_attempt(2);
  cancelled.metrics = &metrics;
  cancelled.cancel_grace = absl::Seconds(1);
  runner = AssignmentRunner::Start(cancelled);
  ASSERT_TRUE(cancelled_link.WaitFor([&] { return cancelled_link.SawState(v1::RUNNING); }, absl::Seconds(30)));
  runner->Cancel("user asked");
  ASSERT_TRUE(Finished(*runner, absl::Seconds(30)));
  EXPECT_EQ(Sample(metrics, "dfv_trainers_started_total", {})->counter.value, 2);
  EXPECT_EQ(Sample(metrics, "dfv_trainers_ended_total", {{"outcome", "failed"}})->counter.value, 1);
  EXPECT_EQ(Sample(metrics, "dfv_trainers_ended_total", {{"outcome", "cancelled"}})->counter.value, 1);
  EXPECT_EQ(Sample(metrics, "dfv_trainers_ended_total", {{"outcome", "succeeded"}})->counter.value, 0);
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
