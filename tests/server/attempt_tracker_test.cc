// The AttemptTracker on its own: a WorkerRegistry with a FakeClock, no
// database, no gRPC.
#include "server/attempt_tracker.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "server/clock.h"

namespace dfv::server {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr char kJob[] = "j-000001";

class AttemptTrackerTest : public ::testing::Test {
 protected:
  WorkerRecord* AddWorker(const std::string& name, const std::string& address) {
    const std::string id = registry_.Register(name, 1, "cpu", address).worker_id;
    return registry_.FindAlive(id);
  }

  // w0..w<n-1>; w0 listens on 10.0.0.5.
  std::vector<WorkerRecord*> AddWorkers(int n) {
    std::vector<WorkerRecord*> workers;
    for (int i = 0; i < n; ++i) {
      workers.push_back(AddWorker(absl::StrCat("w", i), absl::StrCat("10.0.0.", 5 + i, ":7000")));
    }
    return workers;
  }

  // Attempt 1 of kJob with rank r on workers[r], a 60 s rendezvous timeout.
  void Place(const std::vector<WorkerRecord*>& workers) {
    dfv::v1::Assignment base;
    base.set_spec_yaml("name: demo\n");
    base.set_resume_artifact("checkpoint-000100.pt");
    tracker_.Place(kJob, 1, clock_.NowMs(), /*rendezvous_timeout_seconds=*/60, workers, base);
  }

  static const HeldAssignment* Held(const WorkerRecord& worker, int32_t attempt, int32_t rank) {
    auto it = worker.assignments.find(AssignmentKey{kJob, attempt, rank});
    return it == worker.assignments.end() ? nullptr : &it->second;
  }

  static std::vector<int32_t> Ranks(const std::vector<dfv::v1::Assignment>& assignments) {
    std::vector<int32_t> ranks;
    for (const dfv::v1::Assignment& a : assignments) ranks.push_back(a.rank());
    return ranks;
  }

  FakeClock clock_;
  WorkerRegistry registry_{&clock_, WorkerRegistryOptions{5000, 500, 60000}};
  AttemptTracker tracker_{&registry_};
};

TEST_F(AttemptTrackerTest, PlacesEveryRankAndWithholdsRanksAboveZeroUntilPublished) {
  std::vector<WorkerRecord*> w = AddWorkers(3);
  const int64_t placed = clock_.NowMs();
  Place(w);

  const LiveAttempt* attempt = tracker_.Find(kJob);
  ASSERT_NE(attempt, nullptr);
  EXPECT_EQ(attempt->number, 1);
  EXPECT_EQ(attempt->placed_ms, placed);
  ASSERT_EQ(attempt->ranks.size(), 3u);
  EXPECT_EQ(attempt->ranks[2].worker_id, w[2]->id);
  EXPECT_EQ(attempt->ranks[2].worker_name, "w2");
  EXPECT_FALSE(attempt->ranks[2].started);
  EXPECT_THAT(tracker_.JobIds(), ElementsAre(kJob));

  // Every rank holds a slot from placement on.
  for (int r = 0; r < 3; ++r) {
    const HeldAssignment* held = Held(*w[r], 1, r);
    ASSERT_NE(held, nullptr) << r;
    EXPECT_FALSE(held->delivered);
    EXPECT_EQ(held->assignment.job_id(), kJob);
    EXPECT_EQ(held->assignment.attempt(), 1);
    EXPECT_EQ(held->assignment.rank(), r);
    EXPECT_EQ(held->assignment.world_size(), 3);
    EXPECT_EQ(held->assignment.spec_yaml(), "name: demo\n");
    EXPECT_EQ(held->assignment.resume_artifact(), "checkpoint-000100.pt");
    EXPECT_EQ(w[r]->free_slots(), 0);
  }
  // Rank 0 binds a port on its worker's host.
  EXPECT_EQ(Held(*w[0], 1, 0)->assignment.rendezvous(), "10.0.0.5:0");
  EXPECT_EQ(Held(*w[1], 1, 1)->assignment.rendezvous(), "");

  std::vector<dfv::v1::Assignment> sent = tracker_.TakeDeliverable(*w[0]);
  EXPECT_THAT(Ranks(sent), ElementsAre(0));
  EXPECT_TRUE(Held(*w[0], 1, 0)->delivered);
  EXPECT_THAT(tracker_.TakeDeliverable(*w[0]), IsEmpty());  // once
  EXPECT_THAT(tracker_.TakeDeliverable(*w[1]), IsEmpty());  // no rendezvous yet
  EXPECT_THAT(tracker_.TakeDeliverable(*w[2]), IsEmpty());

  clock_.AdvanceMs(2500);
  absl::StatusOr<AttemptTracker::Publication> check =
      tracker_.CheckPublish(AssignmentKey{kJob, 1, 0}, *w[0], "10.0.0.5:41000");
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_EQ(*check, AttemptTracker::Publication::kNew);
  tracker_.SetRendezvous(kJob, "10.0.0.5:41000", clock_.NowMs());
  EXPECT_EQ(tracker_.Find(kJob)->rendezvous, "10.0.0.5:41000");
  EXPECT_EQ(tracker_.Find(kJob)->published_ms, placed + 2500);

  for (int r = 1; r < 3; ++r) {
    sent = tracker_.TakeDeliverable(*w[r]);
    ASSERT_THAT(Ranks(sent), ElementsAre(r));
    EXPECT_EQ(sent[0].rendezvous(), "10.0.0.5:41000");
    EXPECT_EQ(sent[0].world_size(), 3);
    EXPECT_THAT(tracker_.TakeDeliverable(*w[r]), IsEmpty());
  }
}

TEST_F(AttemptTrackerTest, RankZeroOfAWorkerWithoutAddressUsesItsName) {
  std::vector<WorkerRecord*> w = {AddWorker("alpha", ""), AddWorker("beta", "")};
  Place(w);
  EXPECT_EQ(Held(*w[0], 1, 0)->assignment.rendezvous(), "alpha:0");
}

TEST_F(AttemptTrackerTest, SingleRankAttemptHasNoRendezvousAndNoBackstop) {
  std::vector<WorkerRecord*> w = AddWorkers(1);
  Place(w);
  EXPECT_EQ(Held(*w[0], 1, 0)->assignment.rendezvous(), "");
  EXPECT_EQ(Held(*w[0], 1, 0)->assignment.world_size(), 1);
  EXPECT_THAT(Ranks(tracker_.TakeDeliverable(*w[0])), ElementsAre(0));

  absl::StatusOr<AttemptTracker::Publication> check =
      tracker_.CheckPublish(AssignmentKey{kJob, 1, 0}, *w[0], "10.0.0.5:41000");
  EXPECT_EQ(check.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(check.status().message(), "job j-000001 runs on one rank; it has no rendezvous");

  clock_.AdvanceMs(3600 * 1000);
  EXPECT_EQ(tracker_.BackstopReason(kJob, clock_.NowMs()), "");
}

TEST_F(AttemptTrackerTest, PublishIsCheckedAgainstTheLiveAttemptAndRankZero) {
  std::vector<WorkerRecord*> w = AddWorkers(2);
  Place(w);
  ASSERT_THAT(Ranks(tracker_.TakeDeliverable(*w[0])), ElementsAre(0));
  auto publish_error = [&](const AssignmentKey& key, const WorkerRecord& worker,
                           const std::string& address) -> std::string {
    absl::StatusOr<AttemptTracker::Publication> check = tracker_.CheckPublish(key, worker, address);
    if (check.ok()) return "ok";
    EXPECT_EQ(check.status().code(), absl::StatusCode::kFailedPrecondition);
    return std::string(check.status().message());
  };

  EXPECT_EQ(publish_error(AssignmentKey{kJob, 2, 0}, *w[0], "10.0.0.5:41000"),
            "attempt 2 is not the current attempt of job j-000001; its rendezvous is not needed");
  EXPECT_EQ(publish_error(AssignmentKey{"j-000002", 1, 0}, *w[0], "10.0.0.5:41000"),
            "attempt 1 is not the current attempt of job j-000002; its rendezvous is not needed");
  EXPECT_EQ(publish_error(AssignmentKey{kJob, 1, 1}, *w[1], "10.0.0.6:41000"),
            "rank: only rank 0 publishes the rendezvous, got rank 1");
  EXPECT_EQ(publish_error(AssignmentKey{kJob, 1, 0}, *w[1], "10.0.0.6:41000"),
            "worker w1 does not run rank 0 of attempt 1 of job j-000001");
  // Nothing was recorded by the refusals.
  EXPECT_EQ(tracker_.Find(kJob)->rendezvous, "");

  ASSERT_EQ(publish_error(AssignmentKey{kJob, 1, 0}, *w[0], "10.0.0.5:41000"), "ok");
  tracker_.SetRendezvous(kJob, "10.0.0.5:41000", clock_.NowMs());

  // The same address again is a retry; another one is refused.
  absl::StatusOr<AttemptTracker::Publication> again =
      tracker_.CheckPublish(AssignmentKey{kJob, 1, 0}, *w[0], "10.0.0.5:41000");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, AttemptTracker::Publication::kRepeat);
  EXPECT_EQ(publish_error(AssignmentKey{kJob, 1, 0}, *w[0], "10.0.0.5:42000"),
            "address: attempt 1 of job j-000001 already has its rendezvous at 10.0.0.5:41000; "
            "got 10.0.0.5:42000");

  tracker_.BeginCancel(kJob, "cancelled by user", clock_.NowMs() + 10000);
  EXPECT_EQ(publish_error(AssignmentKey{kJob, 1, 0}, *w[0], "10.0.0.5:41000"),
            "job j-000001 is being cancelled; its rendezvous is not needed");
}

TEST_F(AttemptTrackerTest, CompletedRankZeroMayNotPublish) {
  std::vector<WorkerRecord*> w = AddWorkers(2);
  Place(w);
  tracker_.LiveRank(AssignmentKey{kJob, 1, 0}, w[0]->id)->completed = true;
  absl::StatusOr<AttemptTracker::Publication> check =
      tracker_.CheckPublish(AssignmentKey{kJob, 1, 0}, *w[0], "10.0.0.5:41000");
  EXPECT_EQ(check.status().message(), "worker w0 does not run rank 0 of attempt 1 of job j-000001");
}

TEST_F(AttemptTrackerTest, LiveRanksAreWantedAndOthersGetAStopReason) {
  std::vector<WorkerRecord*> w = AddWorkers(2);
  Place(w);
  const AssignmentKey rank1{kJob, 1, 1};
  ASSERT_THAT(Ranks(tracker_.TakeDeliverable(*w[0])), ElementsAre(0));

  RankState* rank = tracker_.LiveRank(rank1, w[1]->id);
  ASSERT_NE(rank, nullptr);
  EXPECT_EQ(rank->worker_name, "w1");
  EXPECT_TRUE(tracker_.Wanted(rank1, w[1]->id));
  EXPECT_EQ(tracker_.LiveRank(rank1, w[0]->id), nullptr);               // another worker
  EXPECT_EQ(tracker_.LiveRank(AssignmentKey{kJob, 2, 1}, w[1]->id), nullptr);  // another attempt
  EXPECT_EQ(tracker_.LiveRank(AssignmentKey{kJob, 1, 2}, w[1]->id), nullptr);  // no such rank
  EXPECT_EQ(tracker_.LiveRank(AssignmentKey{kJob, 1, -1}, w[1]->id), nullptr);
  EXPECT_FALSE(tracker_.Wanted(rank1, w[0]->id));
  EXPECT_EQ(tracker_.StopReason(rank1), "rank 1 of job j-000001 attempt 1 does not run on this worker");
  EXPECT_EQ(tracker_.StopReason(AssignmentKey{kJob, 2, 0}), "attempt 2 of job j-000001 is over");

  // A completed rank is over.
  rank->completed = true;
  EXPECT_EQ(tracker_.LiveRank(rank1, w[1]->id), nullptr);
  EXPECT_FALSE(tracker_.Wanted(rank1, w[1]->id));
  rank->completed = false;

  // While cancelling, delivered ranks stay live (they confirm by completing)
  // but are not wanted; rank 1, never delivered, is released at once.
  tracker_.BeginCancel(kJob, "cancelled by user", clock_.NowMs() + 10000);
  EXPECT_TRUE(tracker_.Cancelling(kJob));
  EXPECT_NE(tracker_.LiveRank(AssignmentKey{kJob, 1, 0}, w[0]->id), nullptr);
  EXPECT_FALSE(tracker_.Wanted(AssignmentKey{kJob, 1, 0}, w[0]->id));
  EXPECT_EQ(tracker_.LiveRank(rank1, w[1]->id), nullptr);
  EXPECT_EQ(tracker_.StopReason(AssignmentKey{kJob, 1, 0}),
            "job j-000001 is being cancelled: cancelled by user");

  tracker_.End(kJob);
  EXPECT_FALSE(tracker_.Cancelling(kJob));
  EXPECT_EQ(tracker_.Find(kJob), nullptr);
  EXPECT_THAT(tracker_.JobIds(), IsEmpty());
  EXPECT_FALSE(tracker_.Wanted(AssignmentKey{kJob, 1, 0}, w[0]->id));
  EXPECT_EQ(tracker_.StopReason(AssignmentKey{kJob, 1, 0}), "attempt 1 of job j-000001 is over");
}

TEST_F(AttemptTrackerTest, ReleaseCountsARankCompletedOnlyWhileCancelling) {
  std::vector<WorkerRecord*> w = AddWorkers(3);
  Place(w);
  ASSERT_THAT(Ranks(tracker_.TakeDeliverable(*w[0])), ElementsAre(0));

  // Not cancelling: the slot is freed, the rank stays live.
  tracker_.Release(*w[2], AssignmentKey{kJob, 1, 2});
  EXPECT_EQ(Held(*w[2], 1, 2), nullptr);
  EXPECT_EQ(w[2]->free_slots(), 1);
  EXPECT_NE(tracker_.LiveRank(AssignmentKey{kJob, 1, 2}, w[2]->id), nullptr);

  // Cancelling releases the ranks never delivered at once: they never start.
  const int64_t deadline = clock_.NowMs() + 10000;
  tracker_.BeginCancel(kJob, "cancelled by user", deadline);
  const LiveAttempt* attempt = tracker_.Find(kJob);
  EXPECT_EQ(attempt->cancel_deadline_ms, deadline);
  EXPECT_EQ(attempt->cancel_reason, "cancelled by user");
  EXPECT_EQ(Held(*w[1], 1, 1), nullptr);
  EXPECT_TRUE(attempt->ranks[1].completed);
  EXPECT_FALSE(attempt->ranks[2].completed);  // its worker no longer held it
  // Rank 0 was delivered: it keeps its slot until its worker confirms.
  ASSERT_NE(Held(*w[0], 1, 0), nullptr);
  EXPECT_FALSE(attempt->ranks[0].completed);
  EXPECT_FALSE(tracker_.AllRanksCompleted(kJob));

  tracker_.Release(*w[0], AssignmentKey{kJob, 1, 0});
  EXPECT_EQ(Held(*w[0], 1, 0), nullptr);
  EXPECT_TRUE(attempt->ranks[0].completed);
  tracker_.LiveRank(AssignmentKey{kJob, 1, 2}, w[2]->id)->completed = true;
  EXPECT_TRUE(tracker_.AllRanksCompleted(kJob));
}

TEST_F(AttemptTrackerTest, BackstopEndsAnAttemptWhoseRankZeroNeverPublishes) {
  std::vector<WorkerRecord*> w = AddWorkers(2);
  const int64_t placed = clock_.NowMs();
  Place(w);
  tracker_.LiveRank(AssignmentKey{kJob, 1, 0}, w[0]->id)->started = true;
  // 60 s rendezvous timeout + 30 s grace.
  EXPECT_EQ(tracker_.BackstopReason(kJob, placed + 89999), "");
  EXPECT_EQ(tracker_.BackstopReason(kJob, placed + 90000),
            "rendezvous: rank 0 did not publish its address within 90 s of placement");
}

TEST_F(AttemptTrackerTest, BackstopNamesTheRanksThatNeverStarted) {
  std::vector<WorkerRecord*> w = AddWorkers(4);
  const int64_t placed = clock_.NowMs();
  Place(w);
  // Nothing started, nothing published: every rank is missing.
  EXPECT_EQ(tracker_.BackstopReason(kJob, placed + 90000),
            "rendezvous: rank(s) 0, 1, 2, 3 did not start within 90 s of placement");

  // Published after 80 s: ranks >= 1 have 90 s from then.
  tracker_.LiveRank(AssignmentKey{kJob, 1, 0}, w[0]->id)->started = true;
  tracker_.SetRendezvous(kJob, "10.0.0.5:41000", placed + 80000);
  tracker_.LiveRank(AssignmentKey{kJob, 1, 2}, w[2]->id)->started = true;
  EXPECT_EQ(tracker_.BackstopReason(kJob, placed + 90000), "");
  EXPECT_EQ(tracker_.BackstopReason(kJob, placed + 169999), "");
  EXPECT_EQ(tracker_.BackstopReason(kJob, placed + 170000),
            "rendezvous: rank(s) 1, 3 did not start within 90 s of rank 0's publication");

  // A completed rank is not missing; with every rank accounted for, no backstop.
  tracker_.LiveRank(AssignmentKey{kJob, 1, 1}, w[1]->id)->completed = true;
  EXPECT_EQ(tracker_.BackstopReason(kJob, placed + 170000),
            "rendezvous: rank(s) 3 did not start within 90 s of rank 0's publication");
  tracker_.LiveRank(AssignmentKey{kJob, 1, 3}, w[3]->id)->started = true;
  EXPECT_EQ(tracker_.BackstopReason(kJob, placed + 170000), "");
  EXPECT_EQ(tracker_.BackstopReason("j-000002", placed + 170000), "");  // no attempt
}

TEST_F(AttemptTrackerTest, StartsAndCompletionsAreCountedPerAttempt) {
  std::vector<WorkerRecord*> w = AddWorkers(3);
  Place(w);
  const AssignmentKey rank0{kJob, 1, 0}, rank1{kJob, 1, 1}, rank2{kJob, 1, 2};
  EXPECT_FALSE(tracker_.AllOtherRanksStarted(rank0));
  tracker_.LiveRank(rank1, w[1]->id)->started = true;
  tracker_.LiveRank(rank2, w[2]->id)->started = true;
  EXPECT_TRUE(tracker_.AllOtherRanksStarted(rank0));   // the attempt runs once rank 0 starts
  EXPECT_FALSE(tracker_.AllOtherRanksStarted(rank1));  // rank 0 has not
  EXPECT_FALSE(tracker_.AllOtherRanksStarted(AssignmentKey{kJob, 2, 0}));  // not the live attempt

  EXPECT_FALSE(tracker_.AllRanksCompleted(kJob));
  tracker_.LiveRank(rank0, w[0]->id)->completed = true;
  tracker_.LiveRank(rank1, w[1]->id)->completed = true;
  EXPECT_FALSE(tracker_.AllRanksCompleted(kJob));
  tracker_.LiveRank(rank2, w[2]->id)->completed = true;
  EXPECT_TRUE(tracker_.AllRanksCompleted(kJob));
  EXPECT_FALSE(tracker_.AllRanksCompleted("j-000002"));
}

TEST_F(AttemptTrackerTest, EndFreesTheSlotsOfRanksNeverDelivered) {
  std::vector<WorkerRecord*> w = AddWorkers(2);
  Place(w);
  ASSERT_THAT(Ranks(tracker_.TakeDeliverable(*w[0])), ElementsAre(0));
  tracker_.End(kJob);
  EXPECT_EQ(tracker_.Find(kJob), nullptr);
  // Rank 1 waited for the rendezvous: its slot is free at once. Rank 0 runs
  // until its worker stops reporting it.
  EXPECT_EQ(Held(*w[1], 1, 1), nullptr);
  EXPECT_EQ(w[1]->free_slots(), 1);
  ASSERT_NE(Held(*w[0], 1, 0), nullptr);
  EXPECT_EQ(w[0]->free_slots(), 0);
  EXPECT_THAT(tracker_.TakeDeliverable(*w[0]), IsEmpty());

  // The next attempt is tracked afresh.
  dfv::v1::Assignment base;
  tracker_.Place(kJob, 2, clock_.NowMs(), 60, {w[1]}, base);
  EXPECT_EQ(tracker_.Find(kJob)->number, 2);
  EXPECT_EQ(tracker_.StopReason(AssignmentKey{kJob, 1, 0}), "attempt 1 of job j-000001 is over");
  EXPECT_THAT(Ranks(tracker_.TakeDeliverable(*w[1])), ElementsAre(0));
}

}  // namespace
}  // namespace dfv::server
