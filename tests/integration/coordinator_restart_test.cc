// A coordinator killed (SIGKILL) in the middle of a two-rank job and started
// again 3 s later on the same data folder and port: the workers keep
// training, spool what they cannot report, register again with their ranks,
// and the new coordinator adopts the attempt. The job finishes in the same
// attempt with every metrics row exactly once, and a watcher that followed
// through the outage saw every event exactly once. Prints the training steps
// lost (target zero) and how long the adoption took.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "proto/dfv.pb.h"
#include "tests/integration/cluster.h"

namespace dfv::testing {
namespace {

constexpr int kSteps = 600;
constexpr int kLogEvery = 5;
constexpr int kCheckpointEvery = 50;

std::string TwoRankJob() {
  return absl::StrFormat(R"(name: restart
model: vae
dataset: {kind: sprites, image_size: 28, channels: 1, sprites_train: 512, sprites_test: 64, seed: 3}
train: {epochs: 1000, max_steps: %d, batch_size: 16, lr: 1.0e-3, seed: 5, threads: 1, log_every_steps: %d}
checkpoint: {every_steps: %d, keep_last: 2}
samples: {every_steps: %d}
resources: {workers: 2}
max_restarts: 2
)",
                         kSteps, kLogEvery, kCheckpointEvery, kSteps);
}

TEST(EndToEnd, AKilledCoordinatorCostsTheRunningTwoRankJobNoStep) {
  const absl::Time test_start = absl::Now();
  Cluster cluster("coordinator_restart");
  ASSERT_TRUE(cluster.StartCoordinator().ok());
  ASSERT_TRUE(cluster.StartWorker("w1").ok()) << cluster.Log("w1");
  ASSERT_TRUE(cluster.StartWorker("w2").ok()) << cluster.Log("w2");
  const std::string id = Submit(cluster, "restart.yaml", TwoRankJob());
  ASSERT_TRUE(WaitForState(cluster, id, v1::RUNNING, absl::Seconds(60)).ok()) << cluster.Log("coordinator");

  // Follows the job from its start, through the outage, to its end.
  CommandResult watched;
  std::thread watcher([&] { watched = cluster.Dfvctl({"watch", id, "-o", "json"}, absl::Seconds(150)); });
  // An ASSERT below returns early: join there too, so the failure is reported
  // rather than std::terminate aborting the binary on a joinable thread.
  absl::Cleanup join_watcher = [&watcher] {
    if (watcher.joinable()) watcher.join();
  };

  // Kill it in the middle of training.
  int64_t step_at_kill = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (absl::Now() < deadline) {
    step_at_kill = GetJob(cluster, id).progress().step();
    if (step_at_kill >= kSteps / 4) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_GE(step_at_kill, kSteps / 4) << cluster.Log("w1");
  // Killed with at least a quarter of the job still to train under the new
  // coordinator; aiming at a quarter, the bound past the half leaves room for
  // a busy machine's late poll.
  ASSERT_LT(step_at_kill, kSteps * 3 / 4) << "the job trains too fast to be killed in its middle";
  const absl::Time killed = absl::Now();
  cluster.KillCoordinator();
  absl::SleepFor(absl::Seconds(3));
  const absl::Time restarted = absl::Now();
  ASSERT_TRUE(cluster.RestartCoordinator().ok()) << cluster.Log("coordinator");

  auto took = WaitForState(cluster, id, v1::SUCCEEDED, absl::Seconds(120));
  ASSERT_TRUE(took.ok()) << took.status() << cluster.Log("coordinator") << cluster.Log("w1") << cluster.Log("w2");
  std::move(join_watcher).Invoke();
  const v1::Job job = GetJob(cluster, id);
  EXPECT_EQ(job.attempt(), 1) << "the same attempt went on";

  CommandResult all = cluster.Dfvctl({"watch", id, "-o", "json"});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  const std::vector<v1::JobEvent> events = ParseEvents(all.out);
  ASSERT_FALSE(events.empty());
  for (size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i].seq(), static_cast<int64_t>(i + 1));

  // The state trail of one attempt: no requeue.
  std::vector<v1::JobState> states;
  std::vector<int64_t> steps;
  std::string waiting_note, adopted_note;
  int64_t adopted_ms = 0;
  std::set<std::string> checkpoints;
  for (const v1::JobEvent& e : events) {
    if (e.has_state()) states.push_back(e.state().state());
    if (e.has_metrics()) steps.push_back(e.metrics().step());
    if (e.has_artifact() && e.artifact().kind() == v1::CHECKPOINT) checkpoints.insert(e.artifact().name());
    if (e.has_message() && absl::StrContains(e.message().text(), "waits up to")) waiting_note = e.message().text();
    if (e.has_message() && absl::StrContains(e.message().text(), "adopted")) {
      adopted_note = e.message().text();
      adopted_ms = e.time_ms();
    }
  }
  EXPECT_EQ(states, (std::vector<v1::JobState>{v1::QUEUED, v1::SCHEDULED, v1::RUNNING, v1::SUCCEEDED}));
  EXPECT_FALSE(waiting_note.empty());
  ASSERT_FALSE(adopted_note.empty()) << cluster.Log("coordinator");

  // Every logged step exactly once, in order: no hole, no duplicate.
  std::vector<int64_t> expected;
  for (int64_t step = kLogEvery; step <= kSteps; step += kLogEvery) expected.push_back(step);
  EXPECT_EQ(steps, expected);
  EXPECT_EQ(checkpoints.size(), static_cast<size_t>(kSteps / kCheckpointEvery)) << "checkpoints made while the "
                                                                                   "coordinator was away arrived";

  // The watcher that reconnected saw the same events, each once.
  EXPECT_EQ(watched.exit_code, 0) << watched.err;
  const std::vector<v1::JobEvent> seen = ParseEvents(watched.out);
  ASSERT_EQ(seen.size(), events.size()) << watched.err;
  for (size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].SerializeAsString(), events[i].SerializeAsString()) << i;
  }

  // Steps lost: steps trained more than once (rows beyond one per logged
  // step), and a new attempt would have redone everything since its
  // checkpoint.
  const int64_t rows_repeated = static_cast<int64_t>(steps.size()) - static_cast<int64_t>(expected.size());
  const int64_t steps_lost = std::max<int64_t>(0, rows_repeated) * kLogEvery +
                             (job.attempt() > 1 ? step_at_kill % kCheckpointEvery : 0);
  EXPECT_EQ(steps_lost, 0);
  const double adopt_seconds = absl::ToDoubleSeconds(absl::FromUnixMillis(adopted_ms) - restarted);
  std::printf(
      "coordinator restart: killed at step %lld of %d, down %.1f s; attempt %d adopted %.2f s after the new "
      "coordinator started (%.2f s after the kill): \"%s\"; training steps lost: %lld; job SUCCEEDED %.1f s after "
      "the restart; whole test %.1f s\n",
      static_cast<long long>(step_at_kill), kSteps, absl::ToDoubleSeconds(restarted - killed), job.attempt(),
      adopt_seconds, absl::ToDoubleSeconds(absl::FromUnixMillis(adopted_ms) - killed), adopted_note.c_str(),
      static_cast<long long>(steps_lost), absl::ToDoubleSeconds(absl::Now() - restarted),
      absl::ToDoubleSeconds(absl::Now() - test_start));
  std::fflush(stdout);
  EXPECT_LT(adopt_seconds, 10.0) << "workers register again within a few heartbeats";
}

}  // namespace
}  // namespace dfv::testing
