// The Coordinator driven through the worker protocol by fake workers, with a
// FakeClock: no gRPC, no sleeping.
#include "server/coordinator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "server/clock.h"
#include "tests/server/fake_worker.h"
#include "tests/server/test_util.h"

namespace dfv::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using dfv::v1::JobEvent;
using testing::FakeWorker;
using testing::Message;
using testing::Metrics;
using testing::Progress;
using testing::Running;

MATCHER_P(IsOkAndHolds, value, "") {
  if (!arg.ok()) {
    *result_listener << "status " << arg.status();
    return false;
  }
  return *arg == value;
}

class CoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_dir_ = testing::FreshDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    Open();
  }

  void Open() {
    coordinator_.reset();
    CoordinatorOptions options;
    options.data_dir = data_dir_;
    options.clock = &clock_;
    options.adopt_grace_ms = adopt_grace_ms_;
    auto coordinator = Coordinator::Create(options);
    ASSERT_TRUE(coordinator.ok()) << coordinator.status();
    coordinator_ = std::move(*coordinator);
  }

  // Queues the job even when no worker can take it yet (wait_for_workers).
  std::string Submit(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
    auto job = coordinator_->SubmitJob(yaml, "job.yaml", overrides, /*wait_for_workers=*/true);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? job->id() : "";
  }

  dfv::v1::Job Job(const std::string& id) {
    auto job = coordinator_->GetJob(id);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? *job : dfv::v1::Job();
  }

  std::vector<JobEvent> Events(const std::string& id) {
    auto events = coordinator_->ReadEvents(id, 0, 0);
    EXPECT_TRUE(events.ok()) << events.status();
    return events.ok() ? *events : std::vector<JobEvent>{};
  }

  // The job states its StateChange events announce, in order.
  std::vector<dfv::v1::JobState> StateTrail(const std::string& id) {
    std::vector<dfv::v1::JobState> states;
    for (const JobEvent& e : Events(id)) {
      if (e.has_state()) states.push_back(e.state().state());
    }
    return states;
  }

  // Advances the clock by `ms` in one-second steps; `alive` heartbeat and
  // the coordinator ticks after each step.
  void Advance(int64_t ms, const std::vector<FakeWorker*>& alive) {
    for (int64_t done = 0; done < ms; done += 1000) {
      clock_.AdvanceMs(std::min<int64_t>(1000, ms - done));
      for (FakeWorker* worker : alive) ASSERT_TRUE(worker->Beat().ok());
      coordinator_->Tick();
    }
  }

  int32_t Restarts(const std::string& id) {
    auto record = coordinator_->job_store()->GetJob(id);
    EXPECT_TRUE(record.ok()) << record.status();
    return record.ok() ? record->restarts : -1;
  }

  // Advances the clock past the lease TTL while `alive` keep heartbeating.
  void LoseWorkers(const std::vector<FakeWorker*>& alive = {}) { testing::LoseWorkers(clock_, *coordinator_, alive); }

  std::string data_dir_;
  FakeClock clock_;
  int64_t adopt_grace_ms_ = CoordinatorOptions().adopt_grace_ms;
  std::unique_ptr<Coordinator> coordinator_;
};

TEST_F(CoordinatorTest, JobRunsToSuccessWithAGapFreeEventLog) {
  const std::string id = Submit(testing::JobYaml("happy"));
  dfv::v1::Job queued = Job(id);
  EXPECT_EQ(queued.id(), "j-000001");
  EXPECT_EQ(queued.state(), dfv::v1::QUEUED);
  EXPECT_EQ(queued.world_size(), 1);
  EXPECT_EQ(queued.max_restarts(), 3);
  EXPECT_EQ(queued.last_seq(), 1);
  EXPECT_THAT(queued.spec_yaml(), HasSubstr("sprites_train: 64"));

  FakeWorker worker(coordinator_.get(), "w1");
  worker.Register();
  auto beat = worker.Beat();
  ASSERT_TRUE(beat.ok()) << beat.status();
  ASSERT_EQ(beat->assignments_size(), 1);
  EXPECT_EQ(beat->lease_ttl_ms(), 5000);
  const dfv::v1::Assignment assignment = beat->assignments(0);
  EXPECT_EQ(assignment.job_id(), id);
  EXPECT_EQ(assignment.attempt(), 1);
  EXPECT_EQ(assignment.rank(), 0);
  EXPECT_EQ(assignment.world_size(), 1);
  EXPECT_EQ(assignment.spec_yaml(), queued.spec_yaml());
  EXPECT_EQ(assignment.resume_artifact(), "");
  EXPECT_EQ(assignment.rendezvous(), "");
  EXPECT_EQ(assignment.rendezvous_secret(), "");  // one rank: no rendezvous
  EXPECT_EQ(Job(id).state(), dfv::v1::SCHEDULED);
  EXPECT_THAT(Job(id).workers(), ElementsAre("w1"));

  // Nothing is delivered twice.
  auto again = worker.Beat();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->assignments_size(), 0);
  EXPECT_EQ(again->cancels_size(), 0);

  ASSERT_THAT(worker.Report(assignment, {Running()}), IsOkAndHolds(false));
  EXPECT_EQ(Job(id).state(), dfv::v1::RUNNING);
  ASSERT_THAT(worker.Report(assignment, {Progress(2, 4), Metrics(2, 0.5), Message("half way")}),
              IsOkAndHolds(false));
  EXPECT_EQ(Job(id).progress().step(), 2);
  EXPECT_EQ(Job(id).progress().total_steps(), 4);
  auto artifact = worker.Upload(assignment, "checkpoints/step-4.ckpt", dfv::v1::CHECKPOINT, 4,
                                "weights");
  ASSERT_TRUE(artifact.ok()) << artifact.status();
  EXPECT_EQ(artifact->attempt(), 1);
  ASSERT_TRUE(worker.Complete(assignment, dfv::v1::OUTCOME_SUCCEEDED).ok());

  dfv::v1::Job done = Job(id);
  EXPECT_EQ(done.state(), dfv::v1::SUCCEEDED);
  std::vector<JobEvent> events = Events(id);
  ASSERT_EQ(static_cast<int64_t>(events.size()), done.last_seq());
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].seq(), static_cast<int64_t>(i + 1));
    EXPECT_EQ(events[i].job_id(), id);
  }
  EXPECT_THAT(StateTrail(id), ElementsAre(dfv::v1::QUEUED, dfv::v1::SCHEDULED, dfv::v1::RUNNING,
                                          dfv::v1::SUCCEEDED));
  ASSERT_EQ(events.size(), 8u);
  EXPECT_TRUE(events[3].has_progress());
  EXPECT_TRUE(events[4].has_metrics());
  EXPECT_EQ(events[5].message().text(), "half way");
  EXPECT_EQ(events[6].artifact().name(), "checkpoints/step-4.ckpt");
  EXPECT_EQ(events[7].state().attempt(), 1);

  // The slot is free again and the artifact is listed.
  std::vector<dfv::v1::WorkerInfo> workers = coordinator_->ListWorkers();
  ASSERT_EQ(workers.size(), 1u);
  EXPECT_EQ(workers[0].free_slots(), 1);
  auto artifacts = coordinator_->ListArtifacts(id);
  ASSERT_TRUE(artifacts.ok());
  ASSERT_EQ(artifacts->size(), 1u);
  auto attempts = coordinator_->job_store()->ListAttempts(id);
  ASSERT_TRUE(attempts.ok());
  ASSERT_EQ(attempts->size(), 1u);
  EXPECT_EQ((*attempts)[0].outcome, AttemptOutcome::kSucceeded);

  // A final job takes no more events or artifacts.
  EXPECT_THAT(worker.Report(assignment, {Message("late")}), IsOkAndHolds(true));
  EXPECT_TRUE(absl::IsFailedPrecondition(
      worker.Upload(assignment, "late.txt", dfv::v1::LOG, 0, "x").status()));
  EXPECT_EQ(Job(id).last_seq(), done.last_seq());
}

TEST_F(CoordinatorTest, BadJobIsRefusedWithTheFieldAndNothingIsQueued) {
  std::string yaml = testing::JobYaml("bad");
  yaml += "checkpoint: {every_steps: -5}\n";
  auto job = coordinator_->SubmitJob(yaml, "bad.yaml", {"train.lr=-1"});
  ASSERT_TRUE(absl::IsInvalidArgument(job.status())) << job.status();
  EXPECT_THAT(job.status().message(), HasSubstr("bad.yaml:8: checkpoint.every_steps"));
  EXPECT_THAT(job.status().message(), HasSubstr("--set train.lr=-1: train.lr"));
  auto jobs = coordinator_->ListJobs({}, 0);
  ASSERT_TRUE(jobs.ok());
  EXPECT_THAT(*jobs, IsEmpty());
  // The next good job still gets the first id.
  EXPECT_EQ(Submit(testing::JobYaml("good")), "j-000001");
}

TEST_F(CoordinatorTest, OverridesApplyAndTheCanonicalSpecIsStored) {
  auto job = coordinator_->SubmitJob(testing::JobYaml("override"), "job.yaml",
                                     {"priority=7", "resources.workers=2"}, /*wait_for_workers=*/true);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->priority(), 7);
  EXPECT_EQ(job->world_size(), 2);
  EXPECT_THAT(job->spec_yaml(), HasSubstr("priority: 7"));
}

TEST_F(CoordinatorTest, CancellingAQueuedJobIsImmediate) {
  const std::string id = Submit(testing::JobYaml("queued"));
  auto cancelled = coordinator_->CancelJob(id, "");
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->state(), dfv::v1::CANCELLED);
  EXPECT_EQ(cancelled->reason(), "cancelled by user");
  EXPECT_THAT(StateTrail(id), ElementsAre(dfv::v1::QUEUED, dfv::v1::CANCELLED));
  auto again = coordinator_->CancelJob(id, "");
  EXPECT_TRUE(absl::IsFailedPrecondition(again.status()));
  EXPECT_THAT(again.status().message(), HasSubstr("already CANCELLED"));
  EXPECT_TRUE(absl::IsNotFound(coordinator_->CancelJob("j-000099", "").status()));

  // A cancelled job is never placed.
  FakeWorker worker(coordinator_.get(), "w1");
  worker.Register();
  auto beat = worker.Beat();
  ASSERT_TRUE(beat.ok());
  EXPECT_EQ(beat->assignments_size(), 0);
}

TEST_F(CoordinatorTest, CancellingARunningJobStopsItsRanks) {
  const std::string id = Submit(testing::JobYaml("running"));
  FakeWorker worker(coordinator_.get(), "w1");
  worker.Register();
  ASSERT_TRUE(worker.Beat().ok());
  const dfv::v1::Assignment assignment = worker.running().at(0);
  ASSERT_TRUE(worker.Report(assignment, {Running()}).ok());

  auto requested = coordinator_->CancelJob(id, "not needed");
  ASSERT_TRUE(requested.ok()) << requested.status();
  EXPECT_EQ(requested->state(), dfv::v1::RUNNING);  // until the worker confirms
  EXPECT_EQ(requested->reason(), "not needed");

  auto beat = worker.Beat();
  ASSERT_TRUE(beat.ok());
  ASSERT_EQ(beat->cancels_size(), 1);
  EXPECT_EQ(beat->cancels(0).job_id(), id);
  EXPECT_EQ(beat->cancels(0).attempt(), 1);
  EXPECT_THAT(beat->cancels(0).reason(), HasSubstr("not needed"));
  EXPECT_THAT(worker.Report(assignment, {Progress(3, 4)}), IsOkAndHolds(true));

  ASSERT_TRUE(worker.Complete(assignment, dfv::v1::OUTCOME_CANCELLED, "stopped").ok());
  dfv::v1::Job job = Job(id);
  EXPECT_EQ(job.state(), dfv::v1::CANCELLED);
  EXPECT_EQ(job.reason(), "not needed");
  EXPECT_THAT(StateTrail(id), ElementsAre(dfv::v1::QUEUED, dfv::v1::SCHEDULED, dfv::v1::RUNNING,
                                          dfv::v1::CANCELLED));
  EXPECT_EQ(coordinator_->ListWorkers()[0].free_slots(), 1);
}

TEST_F(CoordinatorTest, CancelCompletesAfterTheGracePeriodWhenAWorkerNeverConfirms) {
  const std::string id = Submit(testing::JobYaml("stubborn"));
  FakeWorker worker(coordinator_.get(), "w1");
  worker.Register();
  ASSERT_TRUE(worker.Beat().ok());
  ASSERT_TRUE(coordinator_->CancelJob(id, "").ok());
  for (int i = 0; i < 9; ++i) {
    clock_.AdvanceMs(1000);
    auto beat = worker.Beat();  // keeps reporting the rank as running
    ASSERT_TRUE(beat.ok());
    EXPECT_EQ(beat->cancels_size(), 1);
    coordinator_->Tick();
  }
  EXPECT_EQ(Job(id).state(), dfv::v1::SCHEDULED);
  clock_.AdvanceMs(1500);
  ASSERT_TRUE(worker.Beat().ok());
  coordinator_->Tick();
  EXPECT_EQ(Job(id).state(), dfv::v1::CANCELLED);
  // The trainer still runs, so its slot stays taken and cancels keep coming.
  EXPECT_EQ(coordinator_->ListWorkers()[0].free_slots(), 0);
  auto beat = worker.Beat();
  ASSERT_TRUE(beat.ok());
  ASSERT_EQ(beat->cancels_size(), 1);
  EXPECT_THAT(beat->cancels(0).reason(), HasSubstr("CANCELLED"));
  // Once it stops reporting the rank, the slot is free.
  worker.running().clear();
  ASSERT_TRUE(worker.Beat().ok());
  EXPECT_EQ(coordinator_->ListWorkers()[0].free_slots(), 1);
}

TEST_F(CoordinatorTest, CancellingAJobNotYetDeliveredIsImmediate) {
  FakeWorker worker(coordinator_.get(), "w1");
  worker.Register();
  ASSERT_TRUE(worker.Beat().ok());
  const std::string id = Submit(testing::JobYaml("undelivered"));
  EXPECT_EQ(Job(id).state(), dfv::v1::SCHEDULED);  // placed, delivered at the next heartbeat
  auto cancelled = coordinator_->CancelJob(id, "");
  ASSERT_TRUE(cancelled.ok());
  EXPECT_EQ(cancelled->state(), dfv::v1::CANCELLED);
  auto beat = worker.Beat();
  ASSERT_TRUE(beat.ok());
  EXPECT_EQ(beat->assignments_size(), 0);
  EXPECT_EQ(coordinator_->ListWorkers()[0].free_slots(), 1);
}

// A rank that failed because its peer did (a broken collective) is not the
// job's fault: the attempt ends and the job goes back to the queue.
TEST_F(CoordinatorTest, RetryableRankFailureRequeuesTheJob) {
  const std::string id = Submit(testing::JobYaml("gang", /*workers=*/1, 0, /*max_restarts=*/1));
  FakeWorker a(coordinator_.get(), "a");
  a.Register();
  ASSERT_TRUE(a.Beat().ok());
  ASSERT_EQ(a.running().size(), 1u);
  const dfv::v1::Assignment first = a.running()[0];
  ASSERT_TRUE(a.Report(first, {Running()}).ok());
  ASSERT_TRUE(a.Complete(first, dfv::v1::OUTCOME_FAILED, "gloo all-reduce: Connection reset by peer", true).ok());
  // Requeued, and placed again at once on the slot that just freed up.
  EXPECT_EQ(Job(id).state(), dfv::v1::SCHEDULED) << Job(id).reason();
  EXPECT_EQ(Job(id).attempt(), 2);
  EXPECT_THAT(StateTrail(id), ElementsAre(dfv::v1::QUEUED, dfv::v1::SCHEDULED, dfv::v1::RUNNING,
                                          dfv::v1::QUEUED, dfv::v1::SCHEDULED));
  std::vector<JobEvent> events = Events(id);
  const JobEvent& requeued = events[events.size() - 2];
  EXPECT_EQ(requeued.state().state(), dfv::v1::QUEUED);
  EXPECT_EQ(requeued.state().reason(), "rank 0 on worker a: gloo all-reduce: Connection reset by peer");
  ASSERT_TRUE(a.Beat().ok());  // attempt 2 is delivered
  ASSERT_EQ(a.running().size(), 1u);
  EXPECT_EQ(a.running()[0].attempt(), 2);
  // No restarts left: the same failure fails the job.
  const dfv::v1::Assignment second = a.running()[0];
  ASSERT_TRUE(a.Report(second, {Running()}).ok());
  ASSERT_TRUE(a.Complete(second, dfv::v1::OUTCOME_FAILED, "rendezvous timed out", true).ok());
  EXPECT_EQ(Job(id).state(), dfv::v1::FAILED);
}

TEST_F(CoordinatorTest, OneFailingRankFailsTheJobAndStopsTheOthers) {
  const std::string id = Submit(testing::JobYaml("gang", /*workers=*/2));
  FakeWorker a(coordinator_.get(), "a");
  FakeWorker b(coordinator_.get(), "b");
  a.Register();
  b.Register();
  ASSERT_TRUE(a.Beat().ok());  // b has not reported yet: nothing is placed
  EXPECT_TRUE(a.running().empty());
  ASSERT_TRUE(b.Beat().ok());  // placed now
  ASSERT_TRUE(a.Beat().ok());
  // Rank 0 is delivered at once with "HOST:0"; rank 1 waits for its address.
  ASSERT_EQ(a.running().size() + b.running().size(), 1u);
  FakeWorker& w0 = a.running().empty() ? b : a;
  FakeWorker& w1 = a.running().empty() ? a : b;
  ASSERT_EQ(w0.running()[0].rank(), 0);
  EXPECT_EQ(w0.running()[0].world_size(), 2);
  EXPECT_THAT(w0.running()[0].rendezvous(), ::testing::EndsWith(":0"));
  EXPECT_EQ(Job(id).workers_size(), 2);
  dfv::v1::PublishRendezvousRequest publish;
  publish.set_job_id(id);
  publish.set_attempt(w0.running()[0].attempt());
  publish.set_address("127.0.0.1:4242");
  publish.set_worker_id(w1.id());
  EXPECT_EQ(coordinator_->PublishRendezvous(publish).code(), absl::StatusCode::kPermissionDenied)
      << "only rank 0's worker publishes";
  ASSERT_TRUE(w1.Beat().ok());
  EXPECT_TRUE(w1.running().empty());
  publish.set_worker_id(w0.id());
  ASSERT_TRUE(coordinator_->PublishRendezvous(publish).ok());
  ASSERT_TRUE(w1.Beat().ok());
  ASSERT_EQ(w1.running().size(), 1u);
  EXPECT_EQ(w1.running()[0].rank(), 1);
  EXPECT_EQ(w1.running()[0].rendezvous(), "127.0.0.1:4242");

  const dfv::v1::Assignment r0 = w0.running()[0];
  const dfv::v1::Assignment r1 = w1.running()[0];
  ASSERT_TRUE(w0.Report(r0, {Running()}).ok());
  EXPECT_EQ(Job(id).state(), dfv::v1::SCHEDULED);  // waits for every rank
  ASSERT_TRUE(w1.Report(r1, {Running(), Message("rank one here")}).ok());
  EXPECT_EQ(Job(id).state(), dfv::v1::RUNNING);
  EXPECT_EQ(Events(id).back().message().text(), "rank 1: rank one here");
  // Only rank 0's progress counts.
  ASSERT_TRUE(w1.Report(r1, {Progress(99, 100)}).ok());
  EXPECT_EQ(Job(id).progress().step(), 0);

  ASSERT_TRUE(w1.Complete(r1, dfv::v1::OUTCOME_FAILED, "NaN loss").ok());
  dfv::v1::Job job = Job(id);
  EXPECT_EQ(job.state(), dfv::v1::FAILED);
  EXPECT_THAT(job.reason(), ::testing::MatchesRegex("rank 1 on worker [ab]: NaN loss"));
  auto beat = w0.Beat();
  ASSERT_TRUE(beat.ok());
  ASSERT_EQ(beat->cancels_size(), 1);
  EXPECT_EQ(beat->cancels(0).job_id(), id);
  EXPECT_THAT(w0.Report(r0, {Progress(5, 100)}), IsOkAndHolds(true));
  // Completing a rank of a finished attempt is acknowledged.
  EXPECT_TRUE(w0.Complete(r0, dfv::v1::OUTCOME_CANCELLED).ok());
  EXPECT_EQ(Job(id).state(), dfv::v1::FAILED);
  EXPECT_THAT(StateTrail(id), ElementsAre(dfv::v1::QUEUED, dfv::v1::SCHEDULED, dfv::v1::RUNNING,
                                          dfv::v1::FAILED));
}

TEST_F(CoordinatorTest, LostWorkerRequeuesFromTheNewestCheckpointUntilRestartsRunOut) {
  const std::string id = Submit(testing::JobYaml("fragile", 1, 0, /*max_restarts=*/1));
  FakeWorker a(coordinator_.get(), "a");
  a.Register();
  ASSERT_TRUE(a.Beat().ok());
  const dfv::v1::Assignment first = a.running().at(0);
  ASSERT_TRUE(a.Report(first, {Running()}).ok());
  ASSERT_TRUE(a.Upload(first, "checkpoints/step-20.ckpt", dfv::v1::CHECKPOINT, 20, "c20").ok());
  ASSERT_TRUE(a.Upload(first, "checkpoints/step-40.ckpt", dfv::v1::CHECKPOINT, 40, "c40").ok());
  ASSERT_TRUE(a.Upload(first, "grids/swap-step40.png", dfv::v1::GRID, 40, "png").ok());

  LoseWorkers();  // a stops heartbeating
  dfv::v1::Job requeued = Job(id);
  EXPECT_EQ(requeued.state(), dfv::v1::QUEUED);
  EXPECT_EQ(requeued.reason(), "worker a lost");
  EXPECT_EQ(coordinator_->ListWorkers()[0].state(), dfv::v1::WORKER_LOST);
  EXPECT_TRUE(absl::IsNotFound(a.Beat().status()));

  FakeWorker b(coordinator_.get(), "b");
  b.Register();
  auto beat = b.Beat();
  ASSERT_TRUE(beat.ok());
  ASSERT_EQ(beat->assignments_size(), 1);
  EXPECT_EQ(beat->assignments(0).attempt(), 2);
  EXPECT_EQ(beat->assignments(0).resume_artifact(), "checkpoints/step-40.ckpt");
  EXPECT_THAT(Job(id).workers(), ElementsAre("b"));

  LoseWorkers();  // b is lost too: no restarts left
  dfv::v1::Job failed = Job(id);
  EXPECT_EQ(failed.state(), dfv::v1::FAILED);
  EXPECT_THAT(failed.reason(), HasSubstr("worker b lost"));
  EXPECT_THAT(failed.reason(), HasSubstr("no restarts left"));
  EXPECT_THAT(StateTrail(id), ElementsAre(dfv::v1::QUEUED, dfv::v1::SCHEDULED, dfv::v1::RUNNING,
                                          dfv::v1::QUEUED, dfv::v1::SCHEDULED, dfv::v1::FAILED));
  auto attempts = coordinator_->job_store()->ListAttempts(id);
  ASSERT_TRUE(attempts.ok());
  ASSERT_EQ(attempts->size(), 2u);
  EXPECT_EQ((*attempts)[0].outcome, AttemptOutcome::kInterrupted);
  EXPECT_EQ((*attempts)[1].reason, failed.reason());
}

TEST_F(CoordinatorTest, LosingOneRankCancelsTheOtherAndRequeues) {
  const std::string id = Submit(testing::JobYaml("pair", 2));
  FakeWorker a(coordinator_.get(), "a");
  FakeWorker b(coordinator_.get(), "b");
  a.Register();
  b.Register();
  ASSERT_TRUE(a.Beat().ok());  // b has not reported yet: nothing is placed
  EXPECT_TRUE(a.running().empty());
  ASSERT_TRUE(b.Beat().ok());  // placed now; b gets its rank
  ASSERT_TRUE(a.Beat().ok());  // and a gets its rank
  LoseWorkers({&a});  // b goes silent
  EXPECT_EQ(Job(id).state(), dfv::v1::QUEUED);
  EXPECT_EQ(Job(id).reason(), "worker b lost");
  auto beat = a.Beat();
  ASSERT_TRUE(beat.ok());
  ASSERT_EQ(beat->cancels_size(), 1);
  EXPECT_EQ(beat->cancels(0).attempt(), 1);
  EXPECT_EQ(beat->assignments_size(), 0);  // two ranks, one worker alive
}

TEST_F(CoordinatorTest, WorkerRegisteringAgainEndsItsOldSession) {
  const std::string id = Submit(testing::JobYaml("restart"));
  FakeWorker worker(coordinator_.get(), "w1");
  worker.Register();
  ASSERT_TRUE(worker.Beat().ok());
  const std::string old_id = worker.id();
  worker.Register();  // the daemon restarted, its trainer may still run
  ASSERT_NE(worker.id(), old_id);
  EXPECT_EQ(Job(id).reason(), "worker w1 lost (it registered again)");
  // The new session reports the old trainer: it is cancelled, holds its slot
  // until it stops, and then the job runs again as attempt 2.
  auto beat = worker.Beat();
  ASSERT_TRUE(beat.ok());
  ASSERT_EQ(beat->cancels_size(), 1);
  EXPECT_EQ(beat->cancels(0).attempt(), 1);
  EXPECT_EQ(beat->assignments_size(), 0);
  ASSERT_TRUE(worker.Complete(worker.running().at(0), dfv::v1::OUTCOME_CANCELLED).ok());
  beat = worker.Beat();
  ASSERT_TRUE(beat.ok());
  ASSERT_EQ(beat->assignments_size(), 1);
  EXPECT_EQ(beat->assignments(0).attempt(), 2);
  dfv::v1::HeartbeatRequest stale;
  stale.set_worker_id(old_id);
  EXPECT_TRUE(absl::IsNotFound(coordinator_->Heartbeat(stale).status()));
}

TEST_F(CoordinatorTest, AnAssignmentLostInTransitIsDeliveredAgain) {
  Submit(testing::JobYaml("lost-response"));
  FakeWorker worker(coordinator_.get(), "w1");
  worker.Register();
  ASSERT_TRUE(worker.Beat().ok());
  ASSERT_EQ(worker.running().size(), 1u);
  worker.running().clear();  // the response never arrived
  auto beat = worker.Beat();
  ASSERT_TRUE(beat.ok());
  ASSERT_EQ(beat->assignments_size(), 1);
  EXPECT_EQ(beat->assignments(0).attempt(), 1);
}

TEST_F(CoordinatorTest, TwoJobsOnOneSlotRunInPriorityOrder) {
  const std::string low = Submit(testing::JobYaml("low", 1, /*priority=*/0));
  const std::string high = Submit(testing::JobYaml("high", 1, /*priority=*/5));
  FakeWorker worker(coordinator_.get(), "solo");
  worker.Register();
  ASSERT_TRUE(worker.Beat().ok());
  ASSERT_EQ(worker.running().size(), 1u);
  EXPECT_EQ(worker.running()[0].job_id(), high);
  EXPECT_EQ(Job(low).state(), dfv::v1::QUEUED);
  ASSERT_TRUE(worker.Complete(worker.running()[0], dfv::v1::OUTCOME_SUCCEEDED).ok());
  ASSERT_TRUE(worker.Beat().ok());
  ASSERT_EQ(worker.running().size(), 1u);
  EXPECT_EQ(worker.running()[0].job_id(), low);
  EXPECT_EQ(Job(high).state(), dfv::v1::SUCCEEDED);
}

TEST_F(CoordinatorTest, JobsWaitForAWorkerOfTheirDevice) {
  const std::string gpu = Submit(testing::JobYaml("gpu", 1, 0, 3, "cuda"));
  FakeWorker cpu(coordinator_.get(), "cpu-box");
  cpu.Register();
  ASSERT_TRUE(cpu.Beat().ok());
  EXPECT_TRUE(cpu.running().empty());
  FakeWorker cuda(coordinator_.get(), "gpu-box", 1, "cuda");
  cuda.Register();
  ASSERT_TRUE(cuda.Beat().ok());
  ASSERT_EQ(cuda.running().size(), 1u);
  EXPECT_EQ(cuda.running()[0].job_id(), gpu);
}

// With adoption off (--adopt-grace 0), as before adoption existed.
TEST_F(CoordinatorTest, RestartWithoutAdoptionRequeuesPlacedJobsAndKeepsEverything) {
  adopt_grace_ms_ = 0;
  const std::string finished = Submit(testing::JobYaml("finished"));
  const std::string running = Submit(testing::JobYaml("running"));
  const std::string queued = Submit(testing::JobYaml("waiting", 3));
  {
    FakeWorker worker(coordinator_.get(), "w1", 1);
    worker.Register();
    ASSERT_TRUE(worker.Beat().ok());
    ASSERT_TRUE(worker.Complete(worker.running().at(0), dfv::v1::OUTCOME_SUCCEEDED).ok());
    ASSERT_TRUE(worker.Beat().ok());
    const dfv::v1::Assignment a = worker.running().at(0);
    ASSERT_EQ(a.job_id(), running);
    ASSERT_TRUE(worker.Report(a, {Running()}).ok());
    ASSERT_TRUE(worker.Upload(a, "checkpoints/step-2.ckpt", dfv::v1::CHECKPOINT, 2, "c2").ok());
  }
  const int64_t seq_before = Job(running).last_seq();
  Open();  // a new coordinator process on the same data folder

  EXPECT_EQ(Job(finished).state(), dfv::v1::SUCCEEDED);
  EXPECT_EQ(Job(queued).state(), dfv::v1::QUEUED);
  dfv::v1::Job requeued = Job(running);
  EXPECT_EQ(requeued.state(), dfv::v1::QUEUED);
  EXPECT_EQ(requeued.reason(), "coordinator restarted");
  EXPECT_EQ(requeued.last_seq(), seq_before + 1);
  std::vector<JobEvent> events = Events(running);
  ASSERT_EQ(static_cast<int64_t>(events.size()), seq_before + 1);
  EXPECT_EQ(events.back().state().state(), dfv::v1::QUEUED);
  EXPECT_EQ(events.back().state().reason(), "coordinator restarted");
  auto artifacts = coordinator_->ListArtifacts(running);
  ASSERT_TRUE(artifacts.ok());
  EXPECT_EQ(artifacts->size(), 1u);

  // Workers register with the new coordinator; the job resumes as attempt 2.
  FakeWorker worker(coordinator_.get(), "w1", 1);
  worker.Register();
  ASSERT_TRUE(worker.Beat().ok());
  ASSERT_EQ(worker.running().size(), 1u);
  EXPECT_EQ(worker.running()[0].job_id(), running);
  EXPECT_EQ(worker.running()[0].attempt(), 2);
  EXPECT_EQ(worker.running()[0].resume_artifact(), "checkpoints/step-2.ckpt");
  EXPECT_EQ(Submit(testing::JobYaml("next")), "j-000004");
}

// Before each data set kind had its own fields, the canonical job file
// listed every kind's fields; a restarted coordinator still runs such jobs,
// stored in the canonical form workers now parse.
TEST_F(CoordinatorTest, RestartKeepsAJobStoredWithEveryKindsFields) {
  const std::string id = Submit(testing::JobYaml("stored-long-ago"));
  absl::StatusOr<JobRecord> record = coordinator_->job_store()->GetJob(id);
  ASSERT_TRUE(record.ok()) << record.status();
  const std::string canonical = record->job.spec_yaml();
  const std::string anchor = "  sprites_test: 16\n";
  ASSERT_NE(canonical.find(anchor), std::string::npos) << canonical;
  std::string old_form = canonical;
  old_form.insert(old_form.find(anchor) + anchor.size(), "  attr_file: list_attr_celeba.txt\n  attribute: \"\"\n");
  record->job.set_spec_yaml(old_form);
  ASSERT_TRUE(coordinator_->job_store()
                  ->RunInTransaction([&](JobStore::Tx& tx) { return tx.UpdateJob(*record); })
                  .ok());
  Open();
  dfv::v1::Job job = Job(id);
  EXPECT_EQ(job.state(), dfv::v1::QUEUED);
  EXPECT_EQ(job.spec_yaml(), canonical);
  FakeWorker worker(coordinator_.get(), "w1");
  worker.Register();
  ASSERT_TRUE(worker.Beat().ok());
  ASSERT_EQ(worker.running().size(), 1u);
  EXPECT_EQ(worker.running()[0].spec_yaml(), canonical);
}

TEST_F(CoordinatorTest, RestartFinishesAPendingCancel) {
  const std::string id = Submit(testing::JobYaml("cancel-then-crash"));
  FakeWorker worker(coordinator_.get(), "w1");
  worker.Register();
  ASSERT_TRUE(worker.Beat().ok());
  ASSERT_TRUE(coordinator_->CancelJob(id, "stop it").ok());
  Open();
  dfv::v1::Job job = Job(id);
  EXPECT_EQ(job.state(), dfv::v1::CANCELLED);
  EXPECT_EQ(job.reason(), "stop it");
}

// ---- Coordinator restart: adoption

class AdoptionTest : public CoordinatorTest {
 protected:
  // A two-rank job RUNNING on a (rank 0) and b (rank 1), each rank having
  // reported batch 1 (RUNNING) and rank 0 batch 2 (a metrics row).
  void StartPair() {
    for (FakeWorker* w : {&a_, &b_, &c_}) w->set_coordinator(coordinator_.get());
    id_ = Submit(testing::JobYaml("pair", 2));
    for (FakeWorker* w : {&a_, &b_}) {
      w->Register();
      ASSERT_TRUE(w->Beat().ok());
    }
    ASSERT_TRUE(a_.Beat().ok());
    ASSERT_EQ(a_.running().size(), 1u);
    ASSERT_TRUE(a_.Publish(a_.running()[0], "127.0.0.1:4242").ok());
    ASSERT_TRUE(b_.Beat().ok());
    ASSERT_EQ(b_.running().size(), 1u);
    ASSERT_THAT(a_.Report(Rank(0), {Running()}, 1), IsOkAndHolds(false));
    ASSERT_THAT(b_.Report(Rank(1), {Running()}, 1), IsOkAndHolds(false));
    ASSERT_THAT(a_.Report(Rank(0), {Metrics(1, 0.9)}, 2), IsOkAndHolds(false));
    ASSERT_EQ(Job(id_).state(), dfv::v1::RUNNING);
  }
  const dfv::v1::Assignment& Rank(int r) { return (r == 0 ? a_ : b_).running().at(0); }

  // The coordinator process is killed and a new one opens the folder; the
  // workers keep their trainers.
  void Restart() {
    Open();
    for (FakeWorker* w : {&a_, &b_, &c_}) w->set_coordinator(coordinator_.get());
  }

  std::vector<std::string> Messages() {
    std::vector<std::string> texts;
    for (const JobEvent& e : Events(id_)) {
      if (e.has_message()) texts.push_back(e.message().text());
    }
    return texts;
  }
  int MetricsRows() {
    int rows = 0;
    for (const JobEvent& e : Events(id_)) rows += e.has_metrics() ? 1 : 0;
    return rows;
  }

  // Pointed at the coordinator by StartPair and Restart.
  FakeWorker a_{nullptr, "a"};
  FakeWorker b_{nullptr, "b"};
  FakeWorker c_{nullptr, "c"};
  std::string id_;
};

TEST_F(AdoptionTest, WorkersComingBackWithTheirRanksAreAdoptedAndTheAttemptGoesOn) {
  StartPair();
  Restart();
  // The attempt waits for its workers; nothing is requeued.
  dfv::v1::Job waiting = Job(id_);
  EXPECT_EQ(waiting.state(), dfv::v1::RUNNING);
  EXPECT_EQ(waiting.attempt(), 1);
  EXPECT_THAT(Messages(), ElementsAre(HasSubstr("coordinator restarted; attempt 1 waits up to 30 s")));
  clock_.AdvanceMs(2000);
  coordinator_->Tick();

  a_.Register();
  ASSERT_EQ(a_.adopted().size(), 1u);
  EXPECT_EQ(a_.adopted()[0].job_id(), id_);
  EXPECT_EQ(a_.adopted()[0].rank(), 0);
  b_.Register();
  ASSERT_EQ(b_.adopted().size(), 1u);
  EXPECT_EQ(b_.adopted()[0].rank(), 1);
  EXPECT_THAT(Messages().back(), HasSubstr("attempt 1 adopted: its 2 running rank(s) came back after 2 s"));
  for (FakeWorker* w : {&a_, &b_}) {
    auto beat = w->Beat();
    ASSERT_TRUE(beat.ok());
    EXPECT_EQ(beat->cancels_size(), 0);
    EXPECT_EQ(beat->assignments_size(), 0);
  }
  for (const dfv::v1::WorkerInfo& info : coordinator_->ListWorkers()) {
    EXPECT_EQ(info.free_slots(), 0) << info.name() << " holds its adopted rank";
  }
  // Long after the grace period the attempt still runs.
  Advance(60000, {&a_, &b_});
  EXPECT_EQ(Job(id_).state(), dfv::v1::RUNNING);

  // Its reports go on; batch 2 of rank 0 was applied before the restart.
  EXPECT_THAT(a_.Report(Rank(0), {Metrics(1, 0.9)}, 2), IsOkAndHolds(false));
  EXPECT_EQ(MetricsRows(), 1);
  EXPECT_THAT(a_.Report(Rank(0), {Metrics(2, 0.8)}, 3), IsOkAndHolds(false));
  EXPECT_EQ(MetricsRows(), 2);
  ASSERT_TRUE(b_.Complete(Rank(1), dfv::v1::OUTCOME_SUCCEEDED).ok());
  ASSERT_TRUE(a_.Complete(Rank(0), dfv::v1::OUTCOME_SUCCEEDED).ok());
  dfv::v1::Job done = Job(id_);
  EXPECT_EQ(done.state(), dfv::v1::SUCCEEDED);
  EXPECT_EQ(done.attempt(), 1);
  EXPECT_EQ(Restarts(id_), 0);
  EXPECT_THAT(StateTrail(id_), ElementsAre(dfv::v1::QUEUED, dfv::v1::SCHEDULED, dfv::v1::RUNNING,
                                           dfv::v1::SUCCEEDED));
}

TEST_F(AdoptionTest, RanksTheRecordsDisagreeWithAreCancelled) {
  StartPair();
  Restart();
  // Another worker claims rank 1: not adopted (the name disagrees).
  c_.running() = {Rank(1)};
  c_.Register();
  EXPECT_TRUE(c_.adopted().empty());
  auto beat = c_.Beat();
  ASSERT_TRUE(beat.ok());
  ASSERT_EQ(beat->cancels_size(), 1);
  EXPECT_EQ(beat->cancels(0).job_id(), id_);
  // A wrong rank or attempt from the right worker: not adopted either.
  dfv::v1::Assignment wrong_rank = Rank(0);
  wrong_rank.set_rank(1);
  dfv::v1::Assignment wrong_attempt = Rank(0);
  wrong_attempt.set_attempt(7);
  a_.running() = {wrong_rank, wrong_attempt};
  a_.Register();
  EXPECT_TRUE(a_.adopted().empty());
  beat = a_.Beat();
  ASSERT_TRUE(beat.ok());
  EXPECT_EQ(beat->cancels_size(), 2);
  // a came back without rank 0: the attempt cannot go on, and is requeued
  // without waiting for the rest of the grace period.
  dfv::v1::Job job = Job(id_);
  EXPECT_EQ(job.state(), dfv::v1::QUEUED);
  EXPECT_EQ(job.reason(), "coordinator restarted; worker a came back without rank(s) 0 of attempt 1");
  EXPECT_EQ(Restarts(id_), 1);
  // b comes back with rank 1 of that attempt, which is over: cancelled.
  b_.Register();
  EXPECT_TRUE(b_.adopted().empty());
  beat = b_.Beat();
  ASSERT_TRUE(beat.ok());
  ASSERT_EQ(beat->cancels_size(), 1);
  EXPECT_EQ(beat->cancels(0).attempt(), 1);
}

TEST_F(AdoptionTest, AnAttemptWithRanksNotBackWithinTheGraceIsRequeuedAndItsAdoptedRanksCancelled) {
  StartPair();
  Restart();
  a_.Register();
  ASSERT_EQ(a_.adopted().size(), 1u);
  ASSERT_TRUE(a_.Beat().ok());
  Advance(29000, {&a_});
  EXPECT_EQ(Job(id_).state(), dfv::v1::RUNNING) << "b may still come back";
  Advance(2000, {&a_});
  dfv::v1::Job job = Job(id_);
  EXPECT_EQ(job.state(), dfv::v1::QUEUED);
  EXPECT_EQ(job.reason(), "coordinator restarted; rank(s) 1 (worker b) did not come back within 30 s");
  EXPECT_EQ(Restarts(id_), 1);
  auto beat = a_.Beat();
  ASSERT_TRUE(beat.ok());
  ASSERT_EQ(beat->cancels_size(), 1);
  EXPECT_EQ(beat->cancels(0).attempt(), 1);
  // Once it stopped, the job runs again as attempt 2 (resuming as a lost
  // worker's job does).
  ASSERT_TRUE(a_.Complete(Rank(0), dfv::v1::OUTCOME_CANCELLED).ok());
  b_.running().clear();  // b's daemon restarted without its trainer
  b_.Register();
  ASSERT_TRUE(b_.Beat().ok());
  ASSERT_TRUE(a_.Beat().ok());
  EXPECT_EQ(Job(id_).state(), dfv::v1::SCHEDULED);
  EXPECT_EQ(Job(id_).attempt(), 2);
}

TEST_F(AdoptionTest, ADuplicateBatchIsAnsweredAndNotAppliedAgainAcrossARestart) {
  StartPair();
  const int64_t seq = Job(id_).last_seq();
  // The answer to batch 2 was lost: the re-send changes nothing.
  EXPECT_THAT(a_.Report(Rank(0), {Metrics(1, 0.9)}, 2), IsOkAndHolds(false));
  EXPECT_EQ(Job(id_).last_seq(), seq);
  EXPECT_THAT(a_.Report(Rank(0), {Metrics(2, 0.8)}, 3), IsOkAndHolds(false));
  EXPECT_EQ(Job(id_).last_seq(), seq + 1);
  // Not numbered: applied every time.
  EXPECT_THAT(a_.Report(Rank(0), {Message("hi")}), IsOkAndHolds(false));
  EXPECT_THAT(a_.Report(Rank(0), {Message("hi")}), IsOkAndHolds(false));
  EXPECT_EQ(Job(id_).last_seq(), seq + 3);

  // The coordinator was killed right after committing batch 3: the number
  // was stored with its events.
  Restart();
  a_.Register();
  b_.Register();
  const int64_t after_restart = Job(id_).last_seq();  // + the two restart messages
  EXPECT_THAT(a_.Report(Rank(0), {Metrics(2, 0.8)}, 3), IsOkAndHolds(false));
  EXPECT_EQ(Job(id_).last_seq(), after_restart);
  EXPECT_THAT(a_.Report(Rank(0), {Metrics(3, 0.7)}, 4), IsOkAndHolds(false));
  EXPECT_EQ(MetricsRows(), 3);
  // Rank 1's batches are counted on their own.
  EXPECT_THAT(b_.Report(Rank(1), {Message("rank 1 here")}, 2), IsOkAndHolds(false));
  EXPECT_EQ(Messages().back(), "rank 1: rank 1 here");

  // An upload re-sent after its answer was lost is the stored one, once.
  ASSERT_TRUE(a_.Upload(Rank(0), "checkpoints/step-3.ckpt", dfv::v1::CHECKPOINT, 3, "c3").ok());
  const int64_t uploaded = Job(id_).last_seq();
  auto again = a_.Upload(Rank(0), "checkpoints/step-3.ckpt", dfv::v1::CHECKPOINT, 3, "c3");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->checksum(), Crc32Hex(Crc32("c3")));
  EXPECT_EQ(Job(id_).last_seq(), uploaded);
  // Other contents under the same name replace it, as before.
  ASSERT_TRUE(a_.Upload(Rank(0), "checkpoints/step-3.ckpt", dfv::v1::CHECKPOINT, 3, "c3b").ok());
  EXPECT_EQ(Job(id_).last_seq(), uploaded + 1);
}

TEST_F(AdoptionTest, ACancelPendingBeforeTheRestartEndsInCancelled) {
  StartPair();
  ASSERT_TRUE(coordinator_->CancelJob(id_, "stop it").ok());
  Restart();
  EXPECT_EQ(Job(id_).state(), dfv::v1::CANCELLED);
  EXPECT_EQ(Job(id_).reason(), "stop it");
  for (FakeWorker* w : {&a_, &b_}) {
    w->Register();
    EXPECT_TRUE(w->adopted().empty());
    auto beat = w->Beat();
    ASSERT_TRUE(beat.ok());
    ASSERT_EQ(beat->cancels_size(), 1);
    EXPECT_THAT(beat->cancels(0).reason(), HasSubstr("CANCELLED"));
    ASSERT_TRUE(w->Complete(w->running().at(0), dfv::v1::OUTCOME_CANCELLED).ok());
  }
  EXPECT_EQ(Job(id_).state(), dfv::v1::CANCELLED);
  EXPECT_EQ(Restarts(id_), 0);
  for (const dfv::v1::WorkerInfo& info : coordinator_->ListWorkers()) EXPECT_EQ(info.free_slots(), 1);
}

TEST_F(AdoptionTest, ARankThatCompletedBeforeTheRestartIsNotAwaited) {
  StartPair();
  ASSERT_TRUE(b_.Complete(Rank(1), dfv::v1::OUTCOME_SUCCEEDED).ok());
  Restart();
  b_.Register();  // nothing left to run: nothing to adopt
  EXPECT_TRUE(b_.adopted().empty());
  EXPECT_EQ(Job(id_).state(), dfv::v1::RUNNING);
  a_.Register();
  ASSERT_EQ(a_.adopted().size(), 1u);
  EXPECT_THAT(Messages().back(), HasSubstr("attempt 1 adopted: its 1 running rank(s) came back"));
  Advance(40000, {&a_, &b_});
  EXPECT_EQ(Job(id_).state(), dfv::v1::RUNNING);
  ASSERT_TRUE(a_.Complete(Rank(0), dfv::v1::OUTCOME_SUCCEEDED).ok());
  EXPECT_EQ(Job(id_).state(), dfv::v1::SUCCEEDED);
  EXPECT_EQ(Job(id_).attempt(), 1);
}

TEST_F(AdoptionTest, AnAdoptedRankItsWorkerNoLongerRunsEndsTheAttempt) {
  StartPair();
  Restart();
  a_.Register();
  b_.Register();
  b_.running().clear();  // its trainer died without a word
  ASSERT_TRUE(b_.Beat().ok());
  dfv::v1::Job job = Job(id_);
  EXPECT_EQ(job.state(), dfv::v1::QUEUED);
  EXPECT_THAT(job.reason(), HasSubstr("worker b no longer runs rank 1 of attempt 1"));
}

TEST_F(CoordinatorTest, OneCoordinatorPerDataFolder) {
  CoordinatorOptions options;
  options.data_dir = data_dir_;
  options.clock = &clock_;
  auto second = Coordinator::Create(options);
  EXPECT_TRUE(absl::IsFailedPrecondition(second.status())) << second.status();
}

TEST_F(CoordinatorTest, WorkerCallsNeedALiveSession) {
  const std::string id = Submit(testing::JobYaml("auth"));
  dfv::v1::ReportEventsRequest report;
  report.set_worker_id("w-nobody");
  report.set_job_id(id);
  report.set_attempt(1);
  EXPECT_TRUE(absl::IsNotFound(coordinator_->ReportEvents(report).status()));
  dfv::v1::CompleteAssignmentRequest complete;
  complete.set_worker_id("w-nobody");
  complete.set_job_id(id);
  complete.set_attempt(1);
  complete.set_outcome(dfv::v1::OUTCOME_SUCCEEDED);
  EXPECT_TRUE(absl::IsNotFound(coordinator_->CompleteAssignment(complete)));

  // A live worker that does not hold rank 0 cannot upload.
  FakeWorker worker(coordinator_.get(), "w1");
  worker.Register();
  dfv::v1::Assignment fake;
  fake.set_job_id(id);
  fake.set_attempt(7);
  EXPECT_TRUE(absl::IsFailedPrecondition(
      worker.Upload(fake, "report.json", dfv::v1::REPORT, 0, "{}").status()));
  // Reports for an unknown job are NOT_FOUND; for a stale attempt, cancel.
  fake.set_job_id("j-000404");
  EXPECT_TRUE(absl::IsNotFound(worker.Report(fake, {Message("x")}).status()));
  fake.set_job_id(id);
  EXPECT_THAT(worker.Report(fake, {Message("x")}), IsOkAndHolds(true));
}


// ---------------------------------------------------------------------------
// Multi-rank jobs: submit-time capacity, rank 0's host, the rendezvous, its
// backstop, and retryable failures.

TEST_F(CoordinatorTest, SubmitRefusesAJobTheLiveWorkersCannotHoldUnlessWaiting) {
  auto early = coordinator_->SubmitJob(testing::JobYaml("early"), "job.yaml", {});
  ASSERT_TRUE(absl::IsFailedPrecondition(early.status())) << early.status();
  EXPECT_EQ(early.status().message(),
            "resources.workers: 1 rank needs 1 cpu worker slot, the cluster has 0 (no live cpu "
            "worker); submit with --wait to queue it until workers join");

  FakeWorker w2(coordinator_.get(), "w2");
  FakeWorker w1(coordinator_.get(), "w1");
  FakeWorker gpu(coordinator_.get(), "g1", 4, "cuda");
  w2.Register();
  w1.Register();
  gpu.Register();
  auto big = coordinator_->SubmitJob(testing::JobYaml("big", 3), "job.yaml", {});
  ASSERT_TRUE(absl::IsFailedPrecondition(big.status())) << big.status();
  EXPECT_EQ(big.status().message(),
            "resources.workers: 3 ranks need 3 cpu worker slots, the cluster has 2 (w1: 1, w2: 1); "
            "submit with --wait to queue it until workers join");
  // The override counts like the file.
  auto overridden = coordinator_->SubmitJob(testing::JobYaml("small"), "job.yaml",
                                            {"resources.workers=5", "resources.device=cuda"});
  ASSERT_TRUE(absl::IsFailedPrecondition(overridden.status())) << overridden.status();
  EXPECT_THAT(overridden.status().message(),
              HasSubstr("5 ranks need 5 cuda worker slots, the cluster has 4 (g1: 4)"));
  auto jobs = coordinator_->ListJobs({}, 0);
  ASSERT_TRUE(jobs.ok());
  EXPECT_THAT(*jobs, IsEmpty()) << "a refused job is not stored";

  // Slots count whether busy or not; with --wait the cluster's size does not matter.
  auto pair = coordinator_->SubmitJob(testing::JobYaml("pair", 2), "job.yaml", {});
  ASSERT_TRUE(pair.ok()) << pair.status();
  EXPECT_EQ(pair->id(), "j-000001");
  EXPECT_EQ(pair->state(), dfv::v1::QUEUED);
  auto waiting = coordinator_->SubmitJob(testing::JobYaml("big", 3), "job.yaml", {},
                                         /*wait_for_workers=*/true);
  ASSERT_TRUE(waiting.ok()) << waiting.status();
  EXPECT_EQ(waiting->state(), dfv::v1::QUEUED);

  // Lost workers do not count.
  LoseWorkers({&gpu});
  auto after = coordinator_->SubmitJob(testing::JobYaml("late"), "job.yaml", {});
  ASSERT_TRUE(absl::IsFailedPrecondition(after.status())) << after.status();
  EXPECT_THAT(after.status().message(), HasSubstr("the cluster has 0 (no live cpu worker)"));
}

TEST_F(CoordinatorTest, RanksAfterTheFirstWaitForRankZerosRendezvous) {
  const std::string id = Submit(testing::JobYaml("ddp", 3));
  FakeWorker a(coordinator_.get(), "a");
  FakeWorker b(coordinator_.get(), "b");
  FakeWorker c(coordinator_.get(), "c");
  for (FakeWorker* w : {&a, &b, &c}) {
    w->Register();
    ASSERT_TRUE(w->Beat().ok());  // placed once all three have heartbeated
  }
  EXPECT_EQ(Job(id).state(), dfv::v1::SCHEDULED);
  EXPECT_THAT(Job(id).workers(), ElementsAre("a", "b", "c"));
  ASSERT_TRUE(a.Beat().ok());
  ASSERT_EQ(a.running().size(), 1u);
  const dfv::v1::Assignment rank0 = a.running()[0];
  EXPECT_EQ(rank0.rank(), 0);
  EXPECT_EQ(rank0.world_size(), 3);
  EXPECT_EQ(rank0.rendezvous(), "127.0.0.1:0");  // a's host; the trainer picks the port
  // Ranks 1 and 2 are withheld, but their slots are taken.
  ASSERT_TRUE(b.Beat().ok());
  ASSERT_TRUE(c.Beat().ok());
  EXPECT_TRUE(b.running().empty());
  EXPECT_TRUE(c.running().empty());
  for (const dfv::v1::WorkerInfo& info : coordinator_->ListWorkers()) {
    EXPECT_EQ(info.free_slots(), 0) << info.name();
  }

  // Only rank 0 of the current attempt publishes.
  dfv::v1::Assignment as_rank1 = rank0;
  as_rank1.set_rank(1);
  absl::Status status = b.Publish(as_rank1, "127.0.0.1:4242");
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_EQ(status.message(), "rank: only rank 0 publishes the rendezvous, got rank 1");
  status = b.Publish(rank0, "127.0.0.1:4242");
  EXPECT_TRUE(absl::IsPermissionDenied(status)) << status << ": rank 0 is a's, not b's";
  EXPECT_EQ(status.message(), absl::StrCat("worker b does not run rank 0 of attempt 1 of job ", id));
  dfv::v1::Assignment other_attempt = rank0;
  other_attempt.set_attempt(2);
  status = a.Publish(other_attempt, "127.0.0.1:4242");
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("attempt 2 is not the current attempt"));
  dfv::v1::Assignment unknown = rank0;
  unknown.set_job_id("j-000404");
  EXPECT_TRUE(absl::IsNotFound(a.Publish(unknown, "127.0.0.1:4242")));
  FakeWorker stranger(coordinator_.get(), "stranger");
  stranger.set_id("w-nobody");
  EXPECT_TRUE(absl::IsNotFound(stranger.Publish(rank0, "127.0.0.1:4242")));
  ASSERT_TRUE(b.Beat().ok());
  EXPECT_TRUE(b.running().empty()) << "nothing was published yet";

  ASSERT_TRUE(a.Publish(rank0, "127.0.0.1:4242").ok());
  ASSERT_TRUE(a.Publish(rank0, "127.0.0.1:4242").ok()) << "a retry of the same address is fine";
  status = a.Publish(rank0, "127.0.0.1:5353");
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("already has its rendezvous at 127.0.0.1:4242"));
  // Stored with the attempt.
  auto attempts = coordinator_->job_store()->ListAttempts(id);
  ASSERT_TRUE(attempts.ok());
  ASSERT_EQ(attempts->size(), 1u);
  EXPECT_EQ((*attempts)[0].rendezvous, "127.0.0.1:4242");

  auto beat_b = b.Beat();
  ASSERT_TRUE(beat_b.ok());
  ASSERT_EQ(beat_b->assignments_size(), 1);
  EXPECT_EQ(beat_b->assignments(0).rank(), 1);
  EXPECT_EQ(beat_b->assignments(0).rendezvous(), "127.0.0.1:4242");
  EXPECT_EQ(beat_b->assignments(0).spec_yaml(), rank0.spec_yaml());
  auto beat_c = c.Beat();
  ASSERT_TRUE(beat_c.ok());
  ASSERT_EQ(beat_c->assignments_size(), 1);
  EXPECT_EQ(beat_c->assignments(0).rank(), 2);
  EXPECT_EQ(beat_c->assignments(0).rendezvous(), "127.0.0.1:4242");
  // Delivered once; a response lost in transit is delivered again, address included.
  ASSERT_TRUE(b.Beat().ok());
  EXPECT_EQ(b.running().size(), 1u);
  c.running().clear();
  beat_c = c.Beat();
  ASSERT_TRUE(beat_c.ok());
  ASSERT_EQ(beat_c->assignments_size(), 1);
  EXPECT_EQ(beat_c->assignments(0).rendezvous(), "127.0.0.1:4242");

  for (FakeWorker* w : {&a, &b, &c}) ASSERT_TRUE(w->Report(w->running().at(0), {Running()}).ok());
  EXPECT_EQ(Job(id).state(), dfv::v1::RUNNING);
  // The job is over once every rank succeeded.
  ASSERT_TRUE(b.Complete(b.running().at(0), dfv::v1::OUTCOME_SUCCEEDED).ok());
  ASSERT_TRUE(c.Complete(c.running().at(0), dfv::v1::OUTCOME_SUCCEEDED).ok());
  EXPECT_EQ(Job(id).state(), dfv::v1::RUNNING);
  ASSERT_TRUE(a.Complete(rank0, dfv::v1::OUTCOME_SUCCEEDED).ok());
  EXPECT_EQ(Job(id).state(), dfv::v1::SUCCEEDED);
  // A final job has no rendezvous to publish.
  status = a.Publish(rank0, "127.0.0.1:4242");
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("is already SUCCEEDED"));
}

TEST_F(CoordinatorTest, OneRankJobsHaveNoRendezvous) {
  const std::string id = Submit(testing::JobYaml("solo"));
  FakeWorker a(coordinator_.get(), "a");
  a.Register();
  ASSERT_TRUE(a.Beat().ok());
  ASSERT_TRUE(a.Beat().ok());
  ASSERT_EQ(a.running().size(), 1u);
  EXPECT_EQ(a.running()[0].rendezvous(), "");
  absl::Status status = a.Publish(a.running()[0], "127.0.0.1:4242");
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_EQ(status.message(), absl::StrCat("job ", id, " runs on one rank; it has no rendezvous"));
}

TEST_F(CoordinatorTest, RankZeroGoesToAReachableHostWhenTheGangSpansHosts) {
  const std::string id = Submit(testing::JobYaml("spread", 2));
  // `local` has the most free slots, so it would be rank 0 on one machine,
  // but its address is loopback and `remote` is on another host.
  FakeWorker local(coordinator_.get(), "local", 2);
  FakeWorker remote(coordinator_.get(), "remote", 1);
  local.set_address("127.0.0.1:9001");
  remote.set_address("10.1.2.3:9002");
  local.Register();
  remote.Register();
  ASSERT_TRUE(local.Beat().ok());  // two free slots here: placed on local alone
  ASSERT_TRUE(local.Beat().ok());
  EXPECT_THAT(Job(id).workers(), ElementsAre("local", "local"));
  ASSERT_EQ(local.running().size(), 1u);
  EXPECT_EQ(local.running()[0].rendezvous(), "127.0.0.1:0");  // all on one host: any rank 0
  ASSERT_TRUE(coordinator_->CancelJob(id, "").ok());
  local.running().clear();
  ASSERT_TRUE(local.Beat().ok());
  EXPECT_EQ(Job(id).state(), dfv::v1::CANCELLED);

  // Once `local` holds one slot, a two-rank gang spans both hosts.
  const std::string busy = Submit(testing::JobYaml("busy"));
  ASSERT_TRUE(local.Beat().ok());
  ASSERT_EQ(local.running().size(), 1u);
  EXPECT_EQ(local.running()[0].job_id(), busy);
  const std::string spanning = Submit(testing::JobYaml("spanning", 2));
  ASSERT_TRUE(remote.Beat().ok());
  EXPECT_THAT(Job(spanning).workers(), ElementsAre("remote", "local"));
  ASSERT_EQ(remote.running().size(), 1u);  // delivered in the same heartbeat
  EXPECT_EQ(remote.running()[0].rank(), 0);
  EXPECT_EQ(remote.running()[0].rendezvous(), "10.1.2.3:0");
}

// Rank 0 may take long to publish (a big data set to load): the other ranks'
// limit runs from the publication, not from placement. A rank 0 that started
// but never publishes ends the attempt with that reason.
TEST_F(CoordinatorTest, TheOtherRanksRendezvousLimitRunsFromRankZerosPublication) {
  const std::string id = Submit(testing::JobYaml("slow-start", 2, 0, /*max_restarts=*/1),
                                {"resources.rendezvous_timeout_seconds=10"});
  FakeWorker a(coordinator_.get(), "a");
  FakeWorker b(coordinator_.get(), "b");
  for (FakeWorker* w : {&a, &b}) {
    w->Register();
    ASSERT_TRUE(w->Beat().ok());
  }
  ASSERT_TRUE(a.Beat().ok());
  FakeWorker& w0 = a.running().empty() ? b : a;
  FakeWorker& w1 = a.running().empty() ? a : b;
  const dfv::v1::Assignment rank0 = w0.running().at(0);
  ASSERT_TRUE(w0.Report(rank0, {Running()}).ok());
  Advance(35000, {&a, &b});
  ASSERT_TRUE(w0.Publish(rank0, "127.0.0.1:4242").ok());  // 35 s after placement
  ASSERT_TRUE(w1.Beat().ok());
  ASSERT_EQ(w1.running().size(), 1u);
  // Both ranks of the attempt hold its secret: 16 random bytes in hex.
  EXPECT_EQ(rank0.rendezvous_secret().size(), 32u);
  EXPECT_EQ(rank0.rendezvous_secret().find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(w1.running()[0].rendezvous_secret(), rank0.rendezvous_secret());
  Advance(20000, {&a, &b});  // 55 s after placement, 20 s after publication
  EXPECT_EQ(Job(id).state(), dfv::v1::SCHEDULED) << Job(id).reason();  // until every rank runs
  EXPECT_EQ(Job(id).attempt(), 1);
  ASSERT_TRUE(w1.Report(w1.running().at(0), {Running()}).ok());
  Advance(60000, {&a, &b});
  EXPECT_EQ(Job(id).state(), dfv::v1::RUNNING) << "every rank started: no backstop";

  // Attempt 2: rank 0 starts but never publishes.
  ASSERT_TRUE(w0.Complete(rank0, dfv::v1::OUTCOME_FAILED, "gloo all-reduce: Connection reset by peer",
                          /*retryable=*/true)
                  .ok());
  // Rank 1 is told to stop and confirms; attempt 2 is placed.
  auto beat = w1.Beat();
  ASSERT_TRUE(beat.ok());
  ASSERT_EQ(beat->cancels_size(), 1);
  const dfv::v1::Assignment rank1 = w1.running().at(0);
  ASSERT_TRUE(w1.Complete(rank1, dfv::v1::OUTCOME_CANCELLED).ok());
  for (FakeWorker* w : {&a, &b}) ASSERT_TRUE(w->Beat().ok());
  ASSERT_EQ(Job(id).attempt(), 2);
  FakeWorker& v0 = a.running().empty() ? b : a;
  ASSERT_EQ(v0.running().size(), 1u);
  ASSERT_EQ(v0.running()[0].attempt(), 2);
  // A new attempt, a new secret: attempt 1's ranks cannot meet attempt 2's.
  EXPECT_EQ(v0.running()[0].rendezvous_secret().size(), 32u);
  EXPECT_NE(v0.running()[0].rendezvous_secret(), rank0.rendezvous_secret());
  ASSERT_TRUE(v0.Report(v0.running()[0], {Running()}).ok());
  Advance(40000, {&a, &b});
  EXPECT_EQ(Job(id).state(), dfv::v1::FAILED);
  EXPECT_EQ(Job(id).reason(),
            "rendezvous: rank 0 did not publish its address within 40 s of placement; no restarts left "
            "(max_restarts: 1)");
}

TEST_F(CoordinatorTest, RanksThatNeverStartEndTheAttemptAfterTheRendezvousTimeout) {
  // rendezvous_timeout_seconds 10: the backstop fires 10 + 30 s after placement.
  const std::string id = Submit(testing::JobYaml("stuck", 3, 0, /*max_restarts=*/1),
                                {"resources.rendezvous_timeout_seconds=10"});
  FakeWorker a(coordinator_.get(), "a");
  FakeWorker b(coordinator_.get(), "b");
  FakeWorker c(coordinator_.get(), "c");
  for (FakeWorker* w : {&a, &b, &c}) {
    w->Register();
    ASSERT_TRUE(w->Beat().ok());
  }
  ASSERT_EQ(Job(id).state(), dfv::v1::SCHEDULED);  // placed now
  ASSERT_TRUE(a.Beat().ok());
  const dfv::v1::Assignment rank0 = a.running().at(0);
  ASSERT_TRUE(a.Report(rank0, {Running()}).ok());
  ASSERT_TRUE(a.Upload(rank0, "checkpoints/step-2.ckpt", dfv::v1::CHECKPOINT, 2, "c2").ok());
  ASSERT_TRUE(a.Publish(rank0, "127.0.0.1:4242").ok());
  ASSERT_TRUE(b.Beat().ok());
  ASSERT_TRUE(b.Report(b.running().at(0), {Running()}).ok());
  // c received rank 2 but its trainer never starts.
  ASSERT_TRUE(c.Beat().ok());
  ASSERT_EQ(c.running().size(), 1u);

  Advance(39000, {&a, &b, &c});
  EXPECT_EQ(Job(id).state(), dfv::v1::SCHEDULED);
  Advance(1000, {&a, &b, &c});
  dfv::v1::Job requeued = Job(id);
  EXPECT_EQ(requeued.state(), dfv::v1::QUEUED);
  EXPECT_EQ(requeued.reason(), "rendezvous: rank(s) 2 did not start within 40 s of rank 0's publication");
  EXPECT_EQ(Restarts(id), 1);
  // Every rank is told to stop.
  for (FakeWorker* w : {&a, &b, &c}) {
    auto beat = w->Beat();
    ASSERT_TRUE(beat.ok());
    ASSERT_EQ(beat->cancels_size(), 1);
    EXPECT_EQ(beat->cancels(0).attempt(), 1);
    ASSERT_TRUE(w->Complete(w->running().at(0), dfv::v1::OUTCOME_CANCELLED).ok());
  }
  // Once every rank confirmed, the slots are free and attempt 2 is placed.
  EXPECT_EQ(Job(id).state(), dfv::v1::SCHEDULED);
  EXPECT_EQ(Job(id).attempt(), 2);
  EXPECT_EQ(Restarts(id), 1) << "confirming the cancels counts no restart";

  // Attempt 2 resumes from the checkpoint; this time no rank starts at all.
  ASSERT_TRUE(a.Beat().ok());
  ASSERT_EQ(a.running().size(), 1u);
  EXPECT_EQ(a.running()[0].attempt(), 2);
  EXPECT_EQ(a.running()[0].resume_artifact(), "checkpoints/step-2.ckpt");
  Advance(40000, {&a, &b, &c});
  dfv::v1::Job failed = Job(id);
  EXPECT_EQ(failed.state(), dfv::v1::FAILED);
  EXPECT_EQ(failed.reason(),
            "rendezvous: rank(s) 0, 1, 2 did not start within 40 s of placement; no restarts left (max_restarts: 1)");
  // The withheld ranks never ran: their slots are free at once.
  for (const dfv::v1::WorkerInfo& info : coordinator_->ListWorkers()) {
    EXPECT_EQ(info.free_slots(), info.name() == "a" ? 0 : 1) << info.name();
  }
  auto attempts = coordinator_->job_store()->ListAttempts(id);
  ASSERT_TRUE(attempts.ok());
  ASSERT_EQ(attempts->size(), 2u);
  EXPECT_EQ((*attempts)[0].outcome, AttemptOutcome::kInterrupted);
  EXPECT_EQ((*attempts)[0].rendezvous, "127.0.0.1:4242");
  EXPECT_EQ((*attempts)[1].rendezvous, "");
}

// A killed worker: its peer's trainer fails at once (retryable), and its
// lease expires a few seconds later. Either order ends the attempt once.
class RetryRaceTest : public CoordinatorTest {
 protected:
  // A two-rank job running on a (rank 0) and b (rank 1), with a checkpoint.
  std::string StartPair(int max_restarts) {
    const std::string id = Submit(testing::JobYaml("pair", 2, 0, max_restarts));
    a_ = std::make_unique<FakeWorker>(coordinator_.get(), "a");
    b_ = std::make_unique<FakeWorker>(coordinator_.get(), "b");
    a_->Register();
    b_->Register();
    EXPECT_TRUE(a_->Beat().ok());
    EXPECT_TRUE(b_->Beat().ok());
    EXPECT_TRUE(a_->Beat().ok());
    rank0_ = a_->running().at(0);
    EXPECT_TRUE(a_->Publish(rank0_, "127.0.0.1:4242").ok());
    EXPECT_TRUE(b_->Beat().ok());
    rank1_ = b_->running().at(0);
    EXPECT_TRUE(a_->Report(rank0_, {Running()}).ok());
    EXPECT_TRUE(b_->Report(rank1_, {Running()}).ok());
    EXPECT_TRUE(a_->Upload(rank0_, "checkpoints/step-8.ckpt", dfv::v1::CHECKPOINT, 8, "c8").ok());
    EXPECT_EQ(Job(id).state(), dfv::v1::RUNNING);
    return id;
  }

  std::unique_ptr<FakeWorker> a_, b_;
  dfv::v1::Assignment rank0_, rank1_;
};

TEST_F(RetryRaceTest, PeerFailureFirstThenTheLostLeaseRequeuesOnce) {
  const std::string id = StartPair(/*max_restarts=*/2);
  // b is killed: a's collective breaks at once.
  ASSERT_TRUE(a_->Complete(rank0_, dfv::v1::OUTCOME_FAILED,
                          "all-reduce: connection closed by peer rank 1", /*retryable=*/true)
                  .ok());
  dfv::v1::Job job = Job(id);
  EXPECT_EQ(job.state(), dfv::v1::QUEUED);
  EXPECT_EQ(job.reason(), "rank 0 on worker a: all-reduce: connection closed by peer rank 1");
  EXPECT_EQ(Restarts(id), 1);
  LoseWorkers({a_.get()});  // b's lease expires
  EXPECT_EQ(Job(id).state(), dfv::v1::QUEUED);
  EXPECT_EQ(Job(id).reason(), job.reason());
  EXPECT_EQ(Restarts(id), 1);
  EXPECT_THAT(StateTrail(id), ElementsAre(dfv::v1::QUEUED, dfv::v1::SCHEDULED, dfv::v1::RUNNING,
                                          dfv::v1::QUEUED));

  // A replacement worker joins: attempt 2 resumes from the checkpoint.
  FakeWorker c(coordinator_.get(), "c");
  c.Register();
  ASSERT_TRUE(c.Beat().ok());
  ASSERT_TRUE(a_->Beat().ok());
  ASSERT_EQ(a_->running().size(), 1u);
  EXPECT_EQ(a_->running()[0].attempt(), 2);
  EXPECT_EQ(a_->running()[0].resume_artifact(), "checkpoints/step-8.ckpt");
  EXPECT_THAT(Job(id).workers(), ElementsAre("a", "c"));
}

TEST_F(RetryRaceTest, LostLeaseFirstThenThePeerFailureRequeuesOnce) {
  const std::string id = StartPair(/*max_restarts=*/2);
  LoseWorkers({a_.get()});  // b's lease expires before a's trainer notices
  EXPECT_EQ(Job(id).state(), dfv::v1::QUEUED);
  EXPECT_EQ(Job(id).reason(), "worker b lost");
  EXPECT_EQ(Restarts(id), 1);
  auto beat = a_->Beat();
  ASSERT_TRUE(beat.ok());
  ASSERT_EQ(beat->cancels_size(), 1);
  // a's trainer fails anyway; the attempt is already over.
  ASSERT_TRUE(a_->Complete(rank0_, dfv::v1::OUTCOME_FAILED, "all-reduce: connection reset",
                          /*retryable=*/true)
                  .ok());
  EXPECT_EQ(Job(id).state(), dfv::v1::QUEUED);
  EXPECT_EQ(Job(id).reason(), "worker b lost");
  EXPECT_EQ(Restarts(id), 1);
  EXPECT_EQ(coordinator_->ListWorkers()[0].free_slots(), 1) << "a's slot is free again";
  auto attempts = coordinator_->job_store()->ListAttempts(id);
  ASSERT_TRUE(attempts.ok());
  ASSERT_EQ(attempts->size(), 1u);
  EXPECT_EQ((*attempts)[0].outcome, AttemptOutcome::kInterrupted);
  EXPECT_EQ((*attempts)[0].reason, "worker b lost");
}

TEST_F(RetryRaceTest, RetryableFailureWithNoRestartsLeftFailsTheJobOnce) {
  const std::string id = StartPair(/*max_restarts=*/0);
  ASSERT_TRUE(a_->Complete(rank0_, dfv::v1::OUTCOME_FAILED, "rendezvous timed out",
                          /*retryable=*/true)
                  .ok());
  dfv::v1::Job job = Job(id);
  EXPECT_EQ(job.state(), dfv::v1::FAILED);
  EXPECT_EQ(job.reason(),
            "rank 0 on worker a: rendezvous timed out; no restarts left (max_restarts: 0)");
  LoseWorkers({a_.get()});
  EXPECT_EQ(Job(id).reason(), job.reason());
  EXPECT_EQ(Job(id).last_seq(), job.last_seq()) << "nothing happens to a final job";
}

TEST_F(RetryRaceTest, ANonRetryableFailureFailsTheJobWithoutRetrying) {
  const std::string id = StartPair(/*max_restarts=*/3);
  ASSERT_TRUE(b_->Complete(rank1_, dfv::v1::OUTCOME_FAILED, "loss is NaN").ok());
  EXPECT_EQ(Job(id).state(), dfv::v1::FAILED);
  EXPECT_EQ(Job(id).reason(), "rank 1 on worker b: loss is NaN");
  EXPECT_EQ(Restarts(id), 0);
}

TEST_F(CoordinatorTest, RanksAfterTheFirstUploadOnlyTheirOwnLog) {
  const std::string id = Submit(testing::JobYaml("logs", 2));
  FakeWorker a(coordinator_.get(), "a");
  FakeWorker b(coordinator_.get(), "b");
  a.Register();
  b.Register();
  ASSERT_TRUE(a.Beat().ok());
  ASSERT_TRUE(b.Beat().ok());
  ASSERT_TRUE(a.Beat().ok());
  ASSERT_TRUE(a.Publish(a.running().at(0), "127.0.0.1:4242").ok());
  ASSERT_TRUE(b.Beat().ok());
  const dfv::v1::Assignment rank1 = b.running().at(0);
  ASSERT_EQ(rank1.rank(), 1);
  auto log = b.Upload(rank1, "trainer-rank1.log", dfv::v1::LOG, 0, "rank 1 says hi\n");
  ASSERT_TRUE(log.ok()) << log.status();
  auto report = b.Upload(rank1, "report.json", dfv::v1::REPORT, 0, "{}");
  EXPECT_TRUE(absl::IsFailedPrecondition(report.status())) << report.status();
  EXPECT_EQ(report.status().message(),
            absl::StrCat("worker b runs rank 1 of attempt 1 of job ", id,
                         ": it may upload only its log trainer-rank1.log (rank 0 uploads the "
                         "job's artifacts)"));
  EXPECT_TRUE(absl::IsFailedPrecondition(
      b.Upload(rank1, "trainer.log", dfv::v1::LOG, 0, "x").status()));
  auto listed = coordinator_->ListArtifacts(id);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].name(), "trainer-rank1.log");
}

TEST_F(CoordinatorTest, AWorkerMayNotActOnAnotherWorkersRank) {
  const std::string id = Submit(testing::JobYaml("mine"));
  FakeWorker a(coordinator_.get(), "a");
  FakeWorker b(coordinator_.get(), "b");
  a.Register();
  b.Register();
  ASSERT_TRUE(a.Beat().ok());
  ASSERT_TRUE(a.Beat().ok());
  ASSERT_TRUE(b.Beat().ok());
  ASSERT_EQ(a.running().size(), 1u) << "placed on a";
  const dfv::v1::Assignment rank0 = a.running()[0];
  const std::string denied = absl::StrCat("worker b does not run rank 0 of attempt 1 of job ", id);

  // b quotes its own session but a's rank: refused, and nothing changes.
  absl::StatusOr<bool> report = b.Report(rank0, {Running()});
  EXPECT_TRUE(absl::IsPermissionDenied(report.status())) << report.status();
  EXPECT_EQ(report.status().message(), denied);
  EXPECT_EQ(Job(id).state(), dfv::v1::SCHEDULED);
  absl::Status complete = b.Complete(rank0, dfv::v1::OUTCOME_FAILED, "sabotage");
  EXPECT_TRUE(absl::IsPermissionDenied(complete)) << complete;
  EXPECT_EQ(complete.message(), denied);
  absl::StatusOr<dfv::v1::ArtifactInfo> upload =
      b.Upload(rank0, "report.json", dfv::v1::REPORT, 0, "{}");
  EXPECT_TRUE(absl::IsPermissionDenied(upload.status())) << upload.status();
  EXPECT_EQ(upload.status().message(),
            absl::StrCat("worker b runs no rank of attempt 1 of job ", id));
  auto listed = coordinator_->ListArtifacts(id);
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->empty());
  EXPECT_EQ(Job(id).state(), dfv::v1::SCHEDULED);

  // a's own calls work as before.
  ASSERT_TRUE(a.Report(rank0, {Running()}).ok());
  EXPECT_EQ(Job(id).state(), dfv::v1::RUNNING);
  ASSERT_TRUE(a.Upload(rank0, "report.json", dfv::v1::REPORT, 0, "{}").ok());
  ASSERT_TRUE(a.Complete(rank0, dfv::v1::OUTCOME_SUCCEEDED).ok());
  EXPECT_EQ(Job(id).state(), dfv::v1::SUCCEEDED);
  // Once the attempt is over, a stale call about it is not refused (it only
  // frees a slot), whoever sends it.
  EXPECT_TRUE(b.Complete(rank0, dfv::v1::OUTCOME_SUCCEEDED).ok());
}

TEST_F(CoordinatorTest, ASessionBelongsToTheWorkerThatRegisteredIt) {
  FakeWorker a(coordinator_.get(), "a");
  a.Register();
  EXPECT_TRUE(coordinator_->CheckSessionOwner(a.id(), "a").ok());
  absl::Status other = coordinator_->CheckSessionOwner(a.id(), "b");
  EXPECT_TRUE(absl::IsPermissionDenied(other)) << other;
  EXPECT_EQ(other.message(), absl::StrCat("worker session ", a.id(),
                                          " is not the session of worker b (the caller's "
                                          "certificate)"));
  EXPECT_TRUE(absl::IsNotFound(coordinator_->CheckSessionOwner("w-0000000000000000", "a")));
}

}  // namespace
}  // namespace dfv::server
