// Recovery from lost workers, measured with real processes on loopback: the
// figures the service promises (time to detect a lost worker, time from the
// kill to the resumed attempt's first step, steps redone) are printed, and
// held to their targets where the machine's load cannot move them much.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "proto/dfv.pb.h"
#include "tests/integration/cluster.h"
#include "tests/testing/tmpfs.h"

namespace dfv::testing {
namespace {

// A two-rank job with a metrics row every step and a checkpoint every 20.
std::string GangJob(const std::string& name, int max_steps, int workers, int max_restarts) {
  return absl::StrFormat(R"(name: %s
model: vae
dataset: {kind: sprites, image_size: 28, channels: 1, sprites_train: 512, sprites_test: 64, seed: 3}
train: {epochs: 1000, max_steps: %d, batch_size: 16, lr: 1.0e-3, seed: 5, threads: 1, log_every_steps: 1}
checkpoint: {every_steps: 20, keep_last: 2}
samples: {every_steps: 1000}
resources: {workers: %d}
max_restarts: %d
)",
                         name, max_steps, workers, max_restarts);
}

bool Alive(pid_t pid) { return pid > 0 && kill(pid, 0) == 0; }

// Waits until `pid` is gone; returns when it went (or `deadline`).
absl::Time WaitGone(pid_t pid, absl::Time deadline) {
  while (Alive(pid) && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  return absl::Now();
}

// Polls until the job's last metrics step reaches `step`.
bool WaitForStep(Cluster& cluster, const std::string& id, int64_t step, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (GetJob(cluster, id).progress().step() >= step) return true;
    absl::SleepFor(absl::Milliseconds(100));
  }
  return false;
}

// SIGKILL of one rank's daemon and trainer in the middle of a two-rank job,
// with a spare worker ready: the survivor's trainer stops at once, the
// attempt ends, and the next one resumes from the newest checkpoint.
TEST(Recovery, ALostWorkerIsDetectedAndTheJobResumesWithMeasuredFigures) {
  Cluster cluster("recovery_lost_worker");
  ASSERT_TRUE(cluster.StartCoordinator().ok());
  for (const char* name : {"w1", "w2"}) ASSERT_TRUE(cluster.StartWorker(name).ok()) << cluster.Log(name);
  const std::string id = Submit(cluster, "job.yaml", GangJob("lost", 220, 2, 1));
  ASSERT_TRUE(WaitForStep(cluster, id, 50, absl::Seconds(180))) << cluster.Log("coordinator");
  ASSERT_TRUE(cluster.StartWorker("w3").ok()) << cluster.Log("w3");  // the spare
  const v1::Job running = GetJob(cluster, id);
  ASSERT_EQ(running.state(), v1::RUNNING);
  const std::string survivor = running.workers(0);
  const std::string victim = running.workers(1);
  const pid_t survivor_trainer = TrainerPid(cluster.Log(survivor));
  const pid_t victim_trainer = TrainerPid(cluster.Log(victim));
  ASSERT_GT(survivor_trainer, 0);
  ASSERT_GT(victim_trainer, 0);

  const absl::Time killed = absl::Now();
  kill(victim_trainer, SIGKILL);
  cluster.KillWorker(victim);
  const absl::Time survivor_gone = WaitGone(survivor_trainer, killed + absl::Seconds(30));
  EXPECT_FALSE(Alive(survivor_trainer)) << "rank 0's trainer is still running";

  ASSERT_TRUE(WaitForState(cluster, id, v1::SUCCEEDED, absl::Seconds(240)).ok())
      << cluster.Log("coordinator") << cluster.Log(survivor) << cluster.Log("w3");
  const int64_t killed_ms = absl::ToUnixMillis(killed);
  int64_t ended_ms = 0, resumed_first_step_ms = 0, placed_ms = 0, running_ms = 0;
  int64_t last_step_before = 0, first_step_after = 0;
  std::string end_reason;
  bool second_attempt = false;
  std::vector<int64_t> steps_after;
  for (const v1::JobEvent& e : ParseEvents(cluster.Dfvctl({"watch", id, "-o", "json"}).out)) {
    if (e.has_state() && e.state().state() == v1::QUEUED && e.state().attempt() == 1) {
      ended_ms = e.time_ms();
      end_reason = e.state().reason();
    }
    if (e.has_state() && e.state().state() == v1::SCHEDULED && e.state().attempt() == 2) {
      second_attempt = true;
      placed_ms = e.time_ms();
    }
    if (e.has_state() && e.state().state() == v1::RUNNING && e.state().attempt() == 2) running_ms = e.time_ms();
    if (e.has_metrics()) {
      if (!second_attempt) {
        last_step_before = std::max(last_step_before, e.metrics().step());
      } else {
        if (first_step_after == 0) {
          first_step_after = e.metrics().step();
          resumed_first_step_ms = e.time_ms();
        }
        steps_after.push_back(e.metrics().step());
      }
    }
  }
  ASSERT_GT(ended_ms, 0) << "the first attempt never ended";
  ASSERT_GT(first_step_after, 0) << "the second attempt reported no step";
  const int64_t steps_redone = last_step_before - (first_step_after - 1);
  std::printf(
      "lost worker (SIGKILL of %s and its trainer at step %lld): attempt ended %.2f s after the kill (%s); "
      "rank 0's trainer stopped after %.2f s; attempt 2 placed after %.2f s, RUNNING (every rank training) after "
      "%.2f s, its first step %.2f s after the kill (step %lld); steps redone: %lld (checkpoint every 20)\n",
      victim.c_str(), static_cast<long long>(last_step_before), (ended_ms - killed_ms) / 1000.0, end_reason.c_str(),
      absl::ToDoubleSeconds(survivor_gone - killed), (placed_ms - killed_ms) / 1000.0,
      (running_ms - killed_ms) / 1000.0, (resumed_first_step_ms - killed_ms) / 1000.0,
      static_cast<long long>(first_step_after), static_cast<long long>(steps_redone));
  EXPECT_EQ(GetJob(cluster, id).attempt(), 2);
  EXPECT_LE(ended_ms - killed_ms, 5000) << "detection took longer than the lease";
  EXPECT_GE(steps_redone, 0);
  EXPECT_LE(steps_redone, 20) << "more than one checkpoint interval was redone";
  EXPECT_TRUE(std::is_sorted(steps_after.begin(), steps_after.end()));
}

// A worker daemon that stops (SIGSTOP) for longer than its lease and then
// continues: its attempt has ended and moved on, what it reports late is
// refused, and its trainer is stopped.
TEST(Recovery, AStoppedWorkerThatComesBackAfterItsLeaseIsFencedOff) {
  Cluster cluster("recovery_sigstop");
  ASSERT_TRUE(cluster.StartCoordinator().ok());
  ASSERT_TRUE(cluster.StartWorker("w1").ok()) << cluster.Log("w1");
  const std::string id = Submit(cluster, "job.yaml", GangJob("stopped", 400, 1, 1));
  ASSERT_TRUE(WaitForStep(cluster, id, 30, absl::Seconds(120))) << cluster.Log("coordinator");
  const pid_t trainer = TrainerPid(cluster.Log("w1"));
  ASSERT_GT(trainer, 0);
  ASSERT_TRUE(cluster.StartWorker("w2").ok()) << cluster.Log("w2");

  cluster.SignalWorker("w1", SIGSTOP);
  const absl::Time stopped = absl::Now();
  // The lease (5 s) runs out; the job moves to w2 as attempt 2.
  const absl::Time deadline = stopped + absl::Seconds(60);
  while (absl::Now() < deadline) {
    const v1::Job job = GetJob(cluster, id);
    if (job.attempt() == 2 && job.state() == v1::RUNNING) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_EQ(GetJob(cluster, id).attempt(), 2) << cluster.Log("coordinator");
  EXPECT_GE(absl::Now() - stopped, absl::Seconds(5));
  EXPECT_TRUE(Alive(trainer)) << "the stopped daemon's trainer should still be training";
  cluster.SignalWorker("w1", SIGCONT);
  const absl::Time continued = absl::Now();
  const absl::Time gone = WaitGone(trainer, continued + absl::Seconds(30));
  EXPECT_FALSE(Alive(trainer)) << "the fenced-off trainer is still running\n" << cluster.Log("w1");
  std::printf("stopped worker: SIGCONT after %.1f s; its old trainer stopped %.2f s later\n",
              absl::ToDoubleSeconds(continued - stopped), absl::ToDoubleSeconds(gone - continued));

  ASSERT_TRUE(WaitForState(cluster, id, v1::SUCCEEDED, absl::Seconds(240)).ok())
      << cluster.Log("coordinator") << cluster.Log("w2");
  EXPECT_EQ(GetJob(cluster, id).attempt(), 2);
  EXPECT_THAT(GetJob(cluster, id).workers(), ::testing::ElementsAre("w2"));
  // Nothing of attempt 1 arrived after attempt 2 began: its steps rise.
  bool second_attempt = false;
  int64_t previous = 0;
  for (const v1::JobEvent& e : ParseEvents(cluster.Dfvctl({"watch", id, "-o", "json"}).out)) {
    if (e.has_state() && e.state().attempt() == 2) second_attempt = true;
    if (second_attempt && e.has_metrics()) {
      EXPECT_GT(e.metrics().step(), previous) << "a metrics row of the fenced attempt was accepted";
      previous = e.metrics().step();
    }
    if (second_attempt && e.has_artifact()) EXPECT_EQ(e.artifact().attempt(), 2) << e.artifact().name();
  }
  // The daemon keeps serving: it registered again and is alive.
  bool w1_alive = false;
  for (const v1::WorkerInfo& w : Workers(cluster)) {
    if (w.name() == "w1" && w.state() == v1::WORKER_ALIVE) w1_alive = true;
  }
  EXPECT_TRUE(w1_alive) << cluster.Log("w1");
}

// A worker whose disk fills while it trains (its work folder on a 1 MiB
// tmpfs, root only): the job fails with that reason, not retried, and the
// daemon keeps serving.
TEST(Recovery, AFullWorkerDiskFailsTheJobWithThatReasonAndTheDaemonServesOn) {
  Cluster cluster("recovery_worker_disk");
  const std::string work = cluster.dir() + "/w1-work";
  std::filesystem::create_directories(work);
  auto tmpfs = ScopedTmpfs::Mount(work, "1m");
  if (!tmpfs.ok()) GTEST_SKIP() << tmpfs.status().message();
  ASSERT_TRUE(cluster.StartCoordinator().ok());
  ASSERT_TRUE(cluster.StartWorker("w1").ok()) << cluster.Log("w1");
  // A vae checkpoint (with its optimisers' state) is larger than the whole disk.
  const std::string id = Submit(cluster, "job.yaml", GangJob("full", 200, 1, 3));
  ASSERT_TRUE(WaitForState(cluster, id, v1::FAILED, absl::Seconds(120)).ok())
      << GetJob(cluster, id).DebugString() << cluster.Log("w1");
  const v1::Job job = GetJob(cluster, id);
  EXPECT_THAT(job.reason(), ::testing::HasSubstr("No space left on device")) << job.reason();
  EXPECT_EQ(job.attempt(), 1) << "a full disk is not retried";
  std::printf("full worker disk: job FAILED: %s\n", job.reason().c_str());
  bool alive = false;
  for (const v1::WorkerInfo& w : Workers(cluster)) {
    if (w.name() == "w1" && w.state() == v1::WORKER_ALIVE) alive = true;
  }
  EXPECT_TRUE(alive) << cluster.Log("w1");
}

}  // namespace
}  // namespace dfv::testing
