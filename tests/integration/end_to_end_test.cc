// The whole service with real processes on loopback: dfv-coordinator, one or
// two dfv-worker daemons (each training in its own trainer process) and
// dfvctl, ports picked by the kernel and read from ready files.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"
#include "common/png.h"
#include "common/rpc/health.h"
#include "proto/dfv.pb.h"
#include "tests/integration/cluster.h"

namespace dfv::testing {
namespace {

double MetricValue(const v1::MetricsRow& row, const std::string& name) {
  for (const auto& v : row.values()) {
    if (v.name() == name) return v.value();
  }
  ADD_FAILURE() << "no metric " << name;
  return 0;
}

TEST(EndToEnd, SubmitWatchDownloadAndResume) {
  Cluster cluster("submit_watch");
  ASSERT_TRUE(cluster.StartCoordinator().ok());
  ASSERT_TRUE(cluster.StartWorker("w1").ok()) << cluster.Log("w1");
  const std::string id = Submit(cluster, "job.yaml", SmallJob("e2e", "cycle_vae", 60));

  CommandResult watch = cluster.Dfvctl({"watch", id, "-o", "json"});
  ASSERT_EQ(watch.exit_code, 0) << watch.err << cluster.Log("coordinator") << cluster.Log("w1");
  std::vector<v1::JobEvent> events = ParseEvents(watch.out);
  ASSERT_FALSE(events.empty());
  // Gap-free sequence from 1, ending in SUCCEEDED.
  for (size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i].seq(), static_cast<int64_t>(i + 1));
  ASSERT_TRUE(events.back().has_state()) << events.back().DebugString();
  EXPECT_EQ(events.back().state().state(), v1::SUCCEEDED) << events.back().state().reason();

  // The loss fell: the first metrics row against the last.
  std::vector<v1::MetricsRow> rows;
  std::vector<v1::JobState> states;
  for (const auto& e : events) {
    if (e.has_metrics()) rows.push_back(e.metrics());
    if (e.has_state()) states.push_back(e.state().state());
  }
  ASSERT_GE(rows.size(), 2u);
  EXPECT_LT(MetricValue(rows.back(), "loss"), MetricValue(rows.front(), "loss"));
  EXPECT_EQ(states, (std::vector<v1::JobState>{v1::QUEUED, v1::SCHEDULED, v1::RUNNING, v1::SUCCEEDED}));

  // A watcher that joins late after seq k gets exactly the events after k.
  const int64_t k = static_cast<int64_t>(events.size() / 2);
  CommandResult late = cluster.Dfvctl({"watch", id, "--after-seq", std::to_string(k), "-o", "json"});
  ASSERT_EQ(late.exit_code, 0) << late.err;
  std::vector<v1::JobEvent> tail = ParseEvents(late.out);
  ASSERT_EQ(tail.size(), events.size() - k);
  for (size_t i = 0; i < tail.size(); ++i) {
    EXPECT_EQ(tail[i].SerializeAsString(), events[k + i].SerializeAsString()) << i;
  }

  // Every promised grid decodes at its size; the report and the checkpoint came back.
  const std::string download = cluster.dir() + "/download";
  CommandResult got = cluster.Dfvctl({"artifacts", id, "--download", download});
  ASSERT_EQ(got.exit_code, 0) << got.err;
  int grids = 0;
  for (const char* grid : {"reconstruction", "swap", "interpolation"}) {
    const std::string path = absl::StrCat(download, "/grids/", grid, "-step00000060.png");
    auto image = ReadPngFile(path);
    ASSERT_TRUE(image.ok()) << path << ": " << image.status();
    EXPECT_GT(image->width, 28);
    EXPECT_GT(image->height, 28);
    ++grids;
  }
  EXPECT_EQ(grids, 3);
  EXPECT_TRUE(std::filesystem::exists(download + "/report.json"));
  EXPECT_TRUE(std::filesystem::exists(download + "/metrics.csv"));
  const std::string checkpoint = download + "/checkpoints/step-00000060.ckpt";
  ASSERT_TRUE(std::filesystem::exists(checkpoint));

  // The downloaded checkpoint loads: a local run resumes from it at step 60.
  daemon::SpawnOptions resume;
  resume.argv = {DFV_TRAINER_BINARY, "train", download + "/job.yaml",       "--resume",
                 checkpoint,         "--out", cluster.dir() + "/resumed", "--set", "train.max_steps=70"};
  resume.stderr_path = cluster.dir() + "/resume.log";
  auto process = daemon::Subprocess::Spawn(resume);
  ASSERT_TRUE(process.ok());
  daemon::ExitStatus exit = (*process)->Wait();
  std::string log = cluster.Log("resume");
  EXPECT_TRUE(exit.exited && exit.code == 0) << log;
  EXPECT_TRUE(absl::StrContains(log, "at step 60")) << log;
}

// A job trained without evaluation; `dfvctl eval` evaluates its step-40
// checkpoint as a new job: nothing trains, the report has the probes, and
// the source's artifacts are as they were.
TEST(EndToEnd, EvalRunsAStoredCheckpointsEvaluationAsANewJob) {
  Cluster cluster("eval");
  ASSERT_TRUE(cluster.StartCoordinator().ok());
  ASSERT_TRUE(cluster.StartWorker("w1").ok()) << cluster.Log("w1");
  const std::string id = Submit(cluster, "job.yaml", SmallJob("plain", "cycle_vae", 60));
  ASSERT_EQ(cluster.Dfvctl({"watch", id}).exit_code, 0) << cluster.Log("coordinator") << cluster.Log("w1");
  CommandResult before = cluster.Dfvctl({"artifacts", id, "-o", "json"});
  ASSERT_EQ(before.exit_code, 0) << before.err;

  // Nothing to evaluate without an evaluation; a training field is refused.
  CommandResult nothing = cluster.Dfvctl({"eval", id});
  EXPECT_EQ(nothing.exit_code, 1);
  EXPECT_THAT(nothing.err, ::testing::HasSubstr("evaluate.classifiers=[mlp]"));
  CommandResult training = cluster.Dfvctl({"eval", id, "--set", "evaluate.classifiers=[mlp]", "--set", "train.lr=1"});
  EXPECT_EQ(training.exit_code, 2);
  EXPECT_THAT(training.err, ::testing::HasSubstr("--set train.lr=1: train.lr:"));

  const std::string download = cluster.dir() + "/evaluated";
  CommandResult eval = cluster.Dfvctl({"eval", id, "--checkpoint", "step-00000040.ckpt", "--set",
                                       "evaluate.classifiers=[mlp]", "--follow", "--download", download});
  ASSERT_EQ(eval.exit_code, 0) << eval.err << cluster.Log("coordinator") << cluster.Log("w1");
  const std::vector<std::string> lines = absl::StrSplit(eval.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u) << eval.out;
  const std::string eval_id = lines[0];
  EXPECT_NE(eval_id, id);
  EXPECT_EQ(lines[1], download);

  v1::Job job = GetJob(cluster, eval_id);
  EXPECT_EQ(job.state(), v1::SUCCEEDED);
  EXPECT_EQ(job.name(), "plain-eval");
  EXPECT_EQ(job.evaluates().job_id(), id);
  EXPECT_EQ(job.evaluates().checkpoint(), "checkpoints/step-00000040.ckpt");
  EXPECT_EQ(job.evaluates().step(), 40);

  // It resumed at its last step and trained nothing.
  CommandResult watch = cluster.Dfvctl({"watch", eval_id, "-o", "json"});
  ASSERT_EQ(watch.exit_code, 0) << watch.err;
  bool resumed = false;
  for (const v1::JobEvent& e : ParseEvents(watch.out)) {
    EXPECT_FALSE(e.has_metrics()) << e.DebugString();
    if (e.has_message() && absl::StrContains(e.message().text(), "at step 40")) resumed = true;
  }
  EXPECT_TRUE(resumed) << watch.out;

  // Its report has the probes, for the checkpoint's step.
  auto report = nlohmann::json::parse(ReadFileToString(download + "/report.json").value());
  EXPECT_EQ(report["steps"], 40);
  for (const char* code : {"s", "z"}) {
    const nlohmann::json& probe = report["evaluation"]["latent"][code];
    ASSERT_TRUE(probe.contains("mlp")) << report.dump(2);
    EXPECT_GE(probe["mlp"]["test_accuracy"].get<double>(), 0.0);
    EXPECT_TRUE(probe.contains("chance"));
  }
  EXPECT_TRUE(std::filesystem::exists(download + "/grids/swap-step00000040.png"));
  // The one checkpoint it holds is the one it evaluated.
  int checkpoints = 0;
  for (const auto& entry : std::filesystem::directory_iterator(download + "/checkpoints")) {
    EXPECT_EQ(entry.path().filename(), "step-00000040.ckpt");
    ++checkpoints;
  }
  EXPECT_EQ(checkpoints, 1);
  CommandResult table = cluster.Dfvctl({"report", eval_id});
  EXPECT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, ::testing::HasSubstr("latent.s.mlp.test_accuracy"));

  // The source job's artifacts are unchanged, and deleting them leaves the
  // evaluation's checkpoint readable.
  CommandResult after = cluster.Dfvctl({"artifacts", id, "-o", "json"});
  ASSERT_EQ(after.exit_code, 0) << after.err;
  EXPECT_EQ(after.out, before.out);
  ASSERT_EQ(cluster.Dfvctl({"delete", id}).exit_code, 0);
  const std::string again = cluster.dir() + "/again";
  CommandResult fetched = cluster.Dfvctl({"artifacts", eval_id, "--download", again});
  ASSERT_EQ(fetched.exit_code, 0) << fetched.err;
  EXPECT_EQ(ReadFileToString(again + "/checkpoints/step-00000040.ckpt").value(),
            ReadFileToString(download + "/checkpoints/step-00000040.ckpt").value());
}

TEST(EndToEnd, CancelFreesTheSlotAndTheWorkerKeepsServing) {
  Cluster cluster("cancel");
  ASSERT_TRUE(cluster.StartCoordinator().ok());
  ASSERT_TRUE(cluster.StartWorker("w1").ok()) << cluster.Log("w1");
  const std::string id = Submit(cluster, "long.yaml", SmallJob("long", "vae", 1000000));
  ASSERT_TRUE(WaitForState(cluster, id, v1::RUNNING, absl::Seconds(60)).ok()) << cluster.Log("w1");

  CommandResult cancel = cluster.Dfvctl({"cancel", id});
  ASSERT_EQ(cancel.exit_code, 0) << cancel.err;
  auto took = WaitForState(cluster, id, v1::CANCELLED, absl::Seconds(5));
  ASSERT_TRUE(took.ok()) << took.status() << cluster.Log("w1");

  std::vector<v1::WorkerInfo> workers = Workers(cluster);
  ASSERT_EQ(workers.size(), 1u);
  EXPECT_EQ(workers[0].free_slots(), 1);
  EXPECT_EQ(workers[0].state(), v1::WORKER_ALIVE);

  // Cancelling a finished job is refused with its state named.
  CommandResult again = cluster.Dfvctl({"cancel", id});
  EXPECT_NE(again.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(again.err, "CANCELLED")) << again.err;

  const std::string next = Submit(cluster, "next.yaml", SmallJob("next", "vae", 20));
  EXPECT_TRUE(WaitForState(cluster, next, v1::SUCCEEDED, absl::Seconds(60)).ok()) << cluster.Log("w1");
}

TEST(EndToEnd, CrashingTrainerFailsTheJobAndTheWorkerTakesTheNext) {
  Cluster cluster("crash");
  ASSERT_TRUE(cluster.StartCoordinator().ok());
  // The missing folder lies under a data root: the trainer looks and fails.
  ASSERT_TRUE(cluster.StartWorker("w1", 1, {"--data-root", cluster.dir()}).ok()) << cluster.Log("w1");
  const std::string missing = cluster.dir() + "/vanished-data";
  const std::string bad = Submit(cluster, "bad-data.yaml", absl::StrCat(R"(name: vanished
model: vae
dataset: {kind: fashion_mnist, path: )", missing, R"(}
train: {max_steps: 10, threads: 1}
)"));
  ASSERT_TRUE(WaitForState(cluster, bad, v1::FAILED, absl::Seconds(60)).ok());
  v1::Job failed = GetJob(cluster, bad);
  EXPECT_TRUE(absl::StrContains(failed.reason(), missing)) << failed.reason();

  const std::string next = Submit(cluster, "next.yaml", SmallJob("next", "vae", 20));
  EXPECT_TRUE(WaitForState(cluster, next, v1::SUCCEEDED, absl::Seconds(60)).ok()) << cluster.Log("w1");
}

// A job whose data set lies outside its workers' data roots fails at once,
// on every rank count, with the path and the roots named, and is not
// retried; the workers go on serving.
TEST(EndToEnd, DataOutsideTheWorkersDataRootsFailsAtOnceAndIsNotRetried) {
  Cluster cluster("data_roots");
  ASSERT_TRUE(cluster.StartCoordinator().ok());
  const std::string root = cluster.dir() + "/datasets";
  ASSERT_TRUE(cluster.StartWorker("w1", 1, {"--data-root", root}).ok()) << cluster.Log("w1");
  ASSERT_TRUE(cluster.StartWorker("w2", 1, {"--data-root", root}).ok()) << cluster.Log("w2");
  for (const char* ranks : {"1", "2"}) {
    const std::string id = Submit(cluster, absl::StrCat("outside-", ranks, ".yaml"), absl::StrCat(R"(name: outside
model: vae
dataset: {kind: mnist, path: )", root, R"(/../../escaped}
train: {max_steps: 10, threads: 1}
resources: {workers: )", ranks, R"(}
max_restarts: 3
)"));
    ASSERT_TRUE(WaitForState(cluster, id, v1::FAILED, absl::Seconds(60)).ok())
        << cluster.Log("coordinator") << cluster.Log("w1");
    const v1::Job failed = GetJob(cluster, id);
    EXPECT_EQ(failed.attempt(), 1) << "not retried: " << failed.reason();
    EXPECT_TRUE(absl::StrContains(failed.reason(), "dataset.path: " + root + "/../../escaped")) << failed.reason();
    EXPECT_TRUE(absl::StrContains(failed.reason(), "lies outside this worker's data roots")) << failed.reason();
    EXPECT_TRUE(absl::StrContains(failed.reason(), root)) << failed.reason();
  }
  const std::string next = Submit(cluster, "next.yaml", SmallJob("next", "vae", 20));
  EXPECT_TRUE(WaitForState(cluster, next, v1::SUCCEEDED, absl::Seconds(60)).ok()) << cluster.Log("w1");
}

TEST(EndToEnd, BadJobFileIsRefusedAndNothingIsQueued) {
  Cluster cluster("bad_job");
  ASSERT_TRUE(cluster.StartCoordinator().ok());
  const std::string path = cluster.WriteJob("bad.yaml", R"(name: bad
model: vae
dataset: {kind: sprites}
train: {batch_size: -4}
)");
  CommandResult r = cluster.Dfvctl({"submit", path});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_TRUE(absl::StrContains(r.err, "train.batch_size")) << r.err;

  CommandResult list = cluster.Dfvctl({"list", "-o", "json"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_EQ(FromJson<v1::ListJobsResponse>(list.out).jobs_size(), 0) << list.out;
}

TEST(EndToEnd, SubmitBeyondTheLiveWorkersIsRefusedUnlessWaiting) {
  Cluster cluster("too_few_workers");
  ASSERT_TRUE(cluster.StartCoordinator().ok());
  ASSERT_TRUE(cluster.StartWorker("w1").ok()) << cluster.Log("w1");
  const std::string path =
      cluster.WriteJob("pair.yaml", SmallJob("pair", "vae", 20) + "resources: {workers: 2}\n");
  CommandResult refused = cluster.Dfvctl({"submit", path});
  EXPECT_EQ(refused.exit_code, 1) << refused.err;
  EXPECT_TRUE(refused.out.empty()) << refused.out;
  EXPECT_EQ(refused.err,
            "dfvctl: resources.workers: 2 ranks need 2 cpu worker slots, the cluster has 1 (w1: 1); "
            "submit with --wait to queue it until workers join\n");
  CommandResult list = cluster.Dfvctl({"list", "-o", "json"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_EQ(FromJson<v1::ListJobsResponse>(list.out).jobs_size(), 0) << list.out;

  const std::string id = Submit(cluster, "pair.yaml", SmallJob("pair", "vae", 20) + "resources: {workers: 2}\n",
                                {"--wait"});
  v1::Job job = GetJob(cluster, id);
  EXPECT_EQ(job.state(), v1::QUEUED);
  EXPECT_EQ(job.world_size(), 2);
}

TEST(EndToEnd, SingleSlotWorkerRunsJobsOneAfterTheOtherInPriorityOrder) {
  Cluster cluster("priority");
  ASSERT_TRUE(cluster.StartCoordinator().ok());
  // Both queued before any worker exists (--wait), the low-priority one first.
  const std::string low =
      Submit(cluster, "low.yaml", SmallJob("low", "vae", 30, /*priority=*/0), {"--wait"});
  const std::string high =
      Submit(cluster, "high.yaml", SmallJob("high", "vae", 30, /*priority=*/5), {"--wait"});
  ASSERT_TRUE(cluster.StartWorker("w1").ok()) << cluster.Log("w1");
  ASSERT_TRUE(WaitForState(cluster, low, v1::SUCCEEDED, absl::Seconds(90)).ok()) << cluster.Log("coordinator");
  ASSERT_TRUE(WaitForState(cluster, high, v1::SUCCEEDED, absl::Seconds(10)).ok());

  auto times = [&](const std::string& id) {
    CommandResult r = cluster.Dfvctl({"watch", id, "-o", "json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::pair<int64_t, int64_t> scheduled_done{0, 0};
    for (const auto& e : ParseEvents(r.out)) {
      if (e.has_state() && e.state().state() == v1::SCHEDULED) scheduled_done.first = e.time_ms();
      if (e.has_state() && e.state().state() == v1::SUCCEEDED) scheduled_done.second = e.time_ms();
    }
    return scheduled_done;
  };
  auto [high_start, high_end] = times(high);
  auto [low_start, low_end] = times(low);
  EXPECT_LE(high_start, high_end);
  EXPECT_LE(high_end, low_start) << "the low-priority job started before the high-priority one ended";
  EXPECT_LE(low_start, low_end);
}



TEST(EndToEnd, LostWorkerRequeuesTheJobWhichResumesFromItsCheckpoint) {
  Cluster cluster("lost_worker");
  ASSERT_TRUE(cluster.StartCoordinator().ok());
  ASSERT_TRUE(cluster.StartWorker("w1").ok()) << cluster.Log("w1");
  const std::string id = Submit(cluster, "job.yaml", SmallJob("lost", "vae", 600));
  // Wait until a checkpoint has reached the coordinator.
  const bool have_checkpoint = WaitForCheckpoint(cluster, id, absl::Seconds(60));
  ASSERT_TRUE(have_checkpoint) << cluster.Log("w1");
  const pid_t trainer = TrainerPid(cluster.Log("w1"));
  ASSERT_GT(trainer, 0);

  cluster.KillWorker("w1");
  // The orphaned trainer dies on its next write to the dead daemon's pipe.
  absl::Time kill_time = absl::Now();
  while (kill(trainer, 0) == 0 && absl::Now() - kill_time < absl::Seconds(10)) absl::SleepFor(absl::Milliseconds(50));
  EXPECT_NE(kill(trainer, 0), 0) << "trainer " << trainer << " outlived its daemon";

  ASSERT_TRUE(cluster.StartWorker("w2").ok()) << cluster.Log("w2");
  ASSERT_TRUE(WaitForState(cluster, id, v1::SUCCEEDED, absl::Seconds(120)).ok())
      << cluster.Log("coordinator") << cluster.Log("w2");
  v1::Job job = GetJob(cluster, id);
  EXPECT_EQ(job.attempt(), 2);
  CommandResult watch = cluster.Dfvctl({"watch", id, "-o", "json"});
  bool requeued = false, resumed = false;
  for (const auto& e : ParseEvents(watch.out)) {
    if (e.has_state() && e.state().state() == v1::QUEUED && absl::StrContains(e.state().reason(), "w1")) requeued = true;
    if (e.has_message() && absl::StrContains(e.message().text(), "resumed from")) resumed = true;
  }
  EXPECT_TRUE(requeued);
  EXPECT_TRUE(resumed) << watch.out;
}


// A coordinator and workers w1 and w2 with one slot each.
void StartCoordinatorAndTwoWorkers(Cluster& cluster) {
  ASSERT_TRUE(cluster.StartCoordinator().ok());
  ASSERT_TRUE(cluster.StartWorker("w1").ok()) << cluster.Log("w1");
  ASSERT_TRUE(cluster.StartWorker("w2").ok()) << cluster.Log("w2");
}

// Data-parallel: one job, two worker daemons, one rank each, meeting through
// rank 0's rendezvous (published via the coordinator) and reducing gradients
// through shared memory (both daemons are on this host). Rank 0 alone uploads; metrics carry every rank's timings.
TEST(EndToEnd, TwoRankJobTrainsAcrossTwoWorkers) {
  Cluster cluster("two_ranks");
  ASSERT_NO_FATAL_FAILURE(StartCoordinatorAndTwoWorkers(cluster));
  // train.threads 0 (all cores): the two ranks on this host split them.
  std::string yaml = SmallJob("two-ranks", "cycle_vae", 40) + "resources: {workers: 2}\n";
  const size_t threads = yaml.find("threads: 1");
  ASSERT_NE(threads, std::string::npos);
  yaml.replace(threads, 10, "threads: 0");
  const std::string id = Submit(cluster, "job.yaml", yaml);
  ASSERT_TRUE(WaitForState(cluster, id, v1::SUCCEEDED, absl::Seconds(240)).ok())
      << cluster.Log("coordinator") << cluster.Log("w1") << cluster.Log("w2");
  const v1::Job job = GetJob(cluster, id);
  EXPECT_EQ(job.world_size(), 2);
  ASSERT_EQ(job.workers_size(), 2);
  EXPECT_NE(job.workers(0), job.workers(1));

  CommandResult watch = cluster.Dfvctl({"watch", id, "-o", "json"});
  int joined = 0;
  bool per_rank_timings = false;
  for (const auto& e : ParseEvents(watch.out)) {
    if (e.has_message() && absl::StrContains(e.message().text(), "of 2 joined over shm")) {
      ++joined;
      EXPECT_THAT(e.message().text(), ::testing::HasSubstr("; 2 ranks on this host, "));
    }
    if (e.has_metrics()) {
      std::set<std::string> names;
      for (const auto& v : e.metrics().values()) names.insert(v.name());
      per_rank_timings = names.count("rank0_step_time_seconds") && names.count("rank1_step_time_seconds") &&
                         names.count("rank1_allreduce_seconds") && names.count("allreduce_seconds");
    }
  }
  EXPECT_EQ(joined, 2) << "each rank says it joined";
  EXPECT_TRUE(per_rank_timings) << watch.out;
  CommandResult artifacts = cluster.Dfvctl({"artifacts", id, "-o", "json"});
  bool report = false;
  const auto listed = FromJson<v1::ListArtifactsResponse>(artifacts.out);
  for (const auto& a : listed.artifacts()) {
    if (a.name() == "report.json") report = true;
  }
  EXPECT_TRUE(report) << artifacts.out;
}

// Killing one rank's worker mid-run ends the attempt for both ranks: the
// survivor's collective fails at once (its peer's lock on the shared segment
// went with its process), no trainer
// is left blocked, and with no restarts left the job fails with the reason.
TEST(EndToEnd, KilledRankEndsTheWholeAttemptWithinThirtySeconds) {
  Cluster cluster("killed_rank");
  ASSERT_NO_FATAL_FAILURE(StartCoordinatorAndTwoWorkers(cluster));
  const std::string id = Submit(cluster, "job.yaml",
                                SmallJob("killed", "cycle_vae", 100000) + "resources: {workers: 2}\nmax_restarts: 0\n");
  ASSERT_TRUE(WaitForState(cluster, id, v1::RUNNING, absl::Seconds(120)).ok())
      << cluster.Log("coordinator") << cluster.Log("w1") << cluster.Log("w2");
  const v1::Job running = GetJob(cluster, id);
  ASSERT_EQ(running.workers_size(), 2);
  const std::string rank1_worker = running.workers(1);
  const std::string rank0_worker = running.workers(0);
  const pid_t trainer0 = TrainerPid(cluster.Log(rank0_worker));
  const pid_t trainer1 = TrainerPid(cluster.Log(rank1_worker));
  ASSERT_GT(trainer0, 0);
  ASSERT_GT(trainer1, 0);

  const absl::Time killed = absl::Now();
  cluster.KillWorker(rank1_worker);
  ASSERT_TRUE(WaitForState(cluster, id, v1::FAILED, absl::Seconds(30)).ok())
      << cluster.Log("coordinator") << cluster.Log(rank0_worker);
  while ((kill(trainer0, 0) == 0 || kill(trainer1, 0) == 0) && absl::Now() - killed < absl::Seconds(30)) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_NE(kill(trainer0, 0), 0) << "rank 0's trainer is still alive";
  EXPECT_NE(kill(trainer1, 0), 0) << "rank 1's trainer outlived its daemon";
  EXPECT_LT(absl::Now() - killed, absl::Seconds(30));
  std::printf("killed rank: job FAILED and both trainers gone %.1f s after the kill; reason: %s\n",
              absl::ToDoubleSeconds(absl::Now() - killed), GetJob(cluster, id).reason().c_str());
}

// The same kill with a restart left: the survivor's trainer fails at once
// (retryable) and the killed worker's lease expires ~5 s later. The attempt
// ends once, one restart is used, and attempt 2 resumes from the newest
// checkpoint on the survivor and a replacement worker.
TEST(EndToEnd, KilledRankIsRetriedOnceFromItsCheckpoint) {
  Cluster cluster("killed_rank_retried");
  ASSERT_NO_FATAL_FAILURE(StartCoordinatorAndTwoWorkers(cluster));
  const std::string id = Submit(cluster, "job.yaml",
                                SmallJob("retried", "vae", 400) + "resources: {workers: 2}\nmax_restarts: 1\n");
  const bool have_checkpoint = WaitForCheckpoint(cluster, id, absl::Seconds(120));
  ASSERT_TRUE(have_checkpoint) << cluster.Log("coordinator") << cluster.Log("w1") << cluster.Log("w2");
  const v1::Job running = GetJob(cluster, id);
  ASSERT_EQ(running.state(), v1::RUNNING) << running.reason();
  ASSERT_EQ(running.workers_size(), 2) << running.DebugString();
  const std::string killed = running.workers(1);
  cluster.KillWorker(killed);

  // Once the killed worker's lease has expired too, a replacement joins.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  bool lost = false;
  while (!lost && absl::Now() < deadline) {
    for (const v1::WorkerInfo& w : Workers(cluster)) {
      if (w.name() == killed && w.state() == v1::WORKER_LOST) lost = true;
    }
    if (!lost) absl::SleepFor(absl::Milliseconds(200));
  }
  ASSERT_TRUE(lost) << cluster.Log("coordinator");
  EXPECT_EQ(GetJob(cluster, id).state(), v1::QUEUED) << GetJob(cluster, id).reason();
  ASSERT_TRUE(cluster.StartWorker("w3").ok()) << cluster.Log("w3");
  ASSERT_TRUE(WaitForState(cluster, id, v1::SUCCEEDED, absl::Seconds(180)).ok())
      << cluster.Log("coordinator") << cluster.Log(running.workers(0)) << cluster.Log("w3");
  EXPECT_EQ(GetJob(cluster, id).attempt(), 2);

  CommandResult watch = cluster.Dfvctl({"watch", id, "-o", "json"});
  std::vector<v1::JobState> states;
  std::string requeue_reason;
  bool resumed = false;
  for (const auto& e : ParseEvents(watch.out)) {
    if (e.has_state()) states.push_back(e.state().state());
    if (e.has_state() && e.state().state() == v1::QUEUED && e.state().attempt() == 1) {
      requeue_reason = e.state().reason();
    }
    if (e.has_message() && absl::StrContains(e.message().text(), "resumed from")) resumed = true;
  }
  EXPECT_EQ(states, (std::vector<v1::JobState>{v1::QUEUED, v1::SCHEDULED, v1::RUNNING, v1::QUEUED,
                                               v1::SCHEDULED, v1::RUNNING, v1::SUCCEEDED}));
  // Whichever came first ended the attempt: the survivor's failure or the lost lease.
  EXPECT_TRUE(absl::StrContains(requeue_reason, "rank 0 on worker") ||
              absl::StrContains(requeue_reason, absl::StrCat("worker ", killed, " lost")))
      << requeue_reason;
  EXPECT_TRUE(resumed) << watch.out;
}

// A loopback port nothing listens on once this returns (bound, then closed).
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  EXPECT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  close(fd);
  return ntohs(address.sin_port);
}

// Both daemons serve grpc.health.v1.Health, and their `health` verb (the
// containers' HEALTHCHECK) asks it: exit 0 and SERVING, exit 1 naming the
// address when nothing serves there.
TEST(EndToEnd, BothDaemonsServeHealthChecks) {
  Cluster cluster("health");
  ASSERT_TRUE(cluster.StartCoordinator().ok());
  ASSERT_TRUE(cluster.StartWorker("w1").ok()) << cluster.Log("w1");
  auto coordinator = rpc::CheckHealth(*rpc::MakeChannel(cluster.coordinator_address()), absl::Seconds(5));
  ASSERT_TRUE(coordinator.ok()) << coordinator.status();
  EXPECT_EQ(*coordinator, rpc::ServingStatus::kServing);
  std::vector<v1::WorkerInfo> workers = Workers(cluster);
  ASSERT_EQ(workers.size(), 1u);
  auto worker = rpc::CheckHealth(*rpc::MakeChannel(workers[0].address()), absl::Seconds(5));
  ASSERT_TRUE(worker.ok()) << worker.status();
  EXPECT_EQ(*worker, rpc::ServingStatus::kServing);

  CommandResult verb =
      cluster.Run("coordinator", {DFV_COORDINATOR_BINARY, "health", "--address", cluster.coordinator_address()});
  EXPECT_EQ(verb.exit_code, 0) << verb.err;
  EXPECT_EQ(verb.out, absl::StrCat(cluster.coordinator_address(), " SERVING\n"));
  verb = cluster.Run("w1", {DFV_WORKER_BINARY, "health", "--address", workers[0].address()});
  EXPECT_EQ(verb.exit_code, 0) << verb.err;
  EXPECT_EQ(verb.out, absl::StrCat(workers[0].address(), " SERVING\n"));

  // Nothing serves on the port a finished check bound and released.
  const std::string dead = absl::StrCat("127.0.0.1:", FreePort());
  verb = cluster.Run("w1", {DFV_WORKER_BINARY, "health", "--address", dead, "--timeout", "1"});
  EXPECT_EQ(verb.exit_code, 1);
  EXPECT_THAT(verb.err, ::testing::StartsWith(absl::StrCat("dfv-worker: ", dead, ": ")));
  verb = cluster.Run("w1", {DFV_WORKER_BINARY, "health"});
  EXPECT_EQ(verb.exit_code, 2);
  EXPECT_THAT(verb.err, ::testing::HasSubstr("--address: required"));
}

}  // namespace
}  // namespace dfv::testing
