#include "server/scheduler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace dfv::server {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

QueuedJob Job(const std::string& id, int64_t priority, int64_t order, int world_size = 1,
              const std::string& device = "cpu") {
  return QueuedJob{id, priority, order, world_size, device};
}

FreeWorker Worker(const std::string& id, int free_slots, const std::string& device = "cpu",
                  const std::string& host = "127.0.0.1") {
  return FreeWorker{id, id, device, free_slots, host};
}

std::vector<std::string> JobIds(const std::vector<Placement>& placements) {
  std::vector<std::string> ids;
  for (const Placement& p : placements) ids.push_back(p.job_id);
  return ids;
}

TEST(SchedulerTest, HigherPriorityFirstThenSubmitOrder) {
  auto placements = ScheduleJobs({Job("low", 0, 1), Job("high", 5, 3), Job("mid-old", 2, 2),
                                  Job("mid-new", 2, 4)},
                                 {Worker("w1", 3)});
  EXPECT_THAT(JobIds(placements), ElementsAre("high", "mid-old", "mid-new"));
}

TEST(SchedulerTest, GangIsAllOrNothing) {
  // Three ranks need three slots; two are free, so nothing is placed.
  EXPECT_THAT(ScheduleJobs({Job("big", 0, 1, 3)}, {Worker("w1", 1), Worker("w2", 1)}), IsEmpty());
  auto placements = ScheduleJobs({Job("big", 0, 1, 3)},
                                 {Worker("w1", 1), Worker("w2", 1), Worker("w3", 1)});
  ASSERT_EQ(placements.size(), 1u);
  EXPECT_EQ(placements[0].worker_ids.size(), 3u);
}

TEST(SchedulerTest, SpreadsRanksOverDistinctWorkersFirst) {
  auto placements = ScheduleJobs({Job("two", 0, 1, 2)}, {Worker("a", 2), Worker("b", 2)});
  ASSERT_EQ(placements.size(), 1u);
  EXPECT_THAT(placements[0].worker_ids, ElementsAre("a", "b"));
}

TEST(SchedulerTest, AWorkerWithTwoFreeSlotsMayTakeTwoRanks) {
  auto placements = ScheduleJobs({Job("three", 0, 1, 3)}, {Worker("a", 1), Worker("b", 2)});
  ASSERT_EQ(placements.size(), 1u);
  // b has the most free slots: it is rank 0 and takes the extra rank.
  EXPECT_THAT(placements[0].worker_ids, ElementsAre("b", "b", "a"));
}

TEST(SchedulerTest, BackfillsSmallerJobsPastOneThatDoesNotFit) {
  auto placements = ScheduleJobs({Job("big", 10, 1, 4), Job("small", 0, 2, 1)},
                                 {Worker("a", 1), Worker("b", 1)});
  EXPECT_THAT(JobIds(placements), ElementsAre("small"));
}

TEST(SchedulerTest, DeviceMustMatch) {
  auto placements = ScheduleJobs({Job("gpu", 5, 1, 1, "cuda"), Job("cpu", 0, 2, 1, "cpu")},
                                 {Worker("cpu-worker", 4, "cpu")});
  EXPECT_THAT(JobIds(placements), ElementsAre("cpu"));
  placements = ScheduleJobs({Job("gpu", 5, 1, 1, "cuda")},
                            {Worker("cpu-worker", 4, "cpu"), Worker("gpu-worker", 1, "cuda")});
  ASSERT_EQ(placements.size(), 1u);
  EXPECT_THAT(placements[0].worker_ids, ElementsAre("gpu-worker"));
}

TEST(SchedulerTest, PlacedJobsUseUpSlots) {
  auto placements = ScheduleJobs({Job("a", 0, 1), Job("b", 0, 2), Job("c", 0, 3)},
                                 {Worker("w", 2)});
  EXPECT_THAT(JobIds(placements), ElementsAre("a", "b"));
}

TEST(SchedulerTest, RankZeroIsOnAReachableHostWhenTheGangSpansHosts) {
  // "local" has the most free slots and would be rank 0, but it advertises a
  // loopback address and the gang includes a worker on another host.
  auto placements = ScheduleJobs({Job("spread", 0, 1, 3)},
                                 {Worker("local", 2, "cpu", "127.0.0.1"),
                                  Worker("remote", 1, "cpu", "10.0.0.2")});
  ASSERT_EQ(placements.size(), 1u);
  EXPECT_THAT(placements[0].worker_ids, ElementsAre("remote", "local", "local"));

  // IPv6 loopback and "localhost" count as loopback too; the first reachable
  // worker in the usual order takes rank 0 with all of its ranks.
  placements = ScheduleJobs({Job("spread", 0, 1, 5)},
                            {Worker("a", 2, "cpu", "[::1]"), Worker("b", 1, "cpu", "localhost"),
                             Worker("c", 1, "cpu", "192.168.1.9"), Worker("d", 2, "cpu", "10.0.0.4")});
  ASSERT_EQ(placements.size(), 1u);
  EXPECT_THAT(placements[0].worker_ids, ElementsAre("d", "a", "a", "b", "c"));

  // Spreading puts one rank on each worker, so this gang spans hosts too.
  placements = ScheduleJobs({Job("pair", 0, 1, 2)},
                            {Worker("a", 2, "cpu", "127.0.0.1"), Worker("z", 1, "cpu", "10.0.0.9")});
  ASSERT_EQ(placements.size(), 1u);
  EXPECT_THAT(placements[0].worker_ids, ElementsAre("z", "a"));
}

TEST(SchedulerTest, OnOneHostAnyWorkerMayBeRankZero) {
  // All loopback: the usual order (most free slots first).
  auto placements = ScheduleJobs({Job("local", 0, 1, 3)},
                                 {Worker("a", 1, "cpu", "127.0.0.1"), Worker("b", 2, "cpu", "127.0.0.1")});
  ASSERT_EQ(placements.size(), 1u);
  EXPECT_THAT(placements[0].worker_ids, ElementsAre("b", "b", "a"));
  // All on other hosts: every choice is reachable, the order stays.
  placements = ScheduleJobs({Job("remote", 0, 1, 3)},
                            {Worker("a", 1, "cpu", "10.0.0.1"), Worker("b", 2, "cpu", "10.0.0.2")});
  ASSERT_EQ(placements.size(), 1u);
  EXPECT_THAT(placements[0].worker_ids, ElementsAre("b", "b", "a"));
  // A loopback worker may take every rank itself: the gang is one host.
  placements = ScheduleJobs({Job("pair", 0, 1, 2)},
                            {Worker("a", 2, "cpu", "127.0.0.1"), Worker("z", 1, "cuda", "10.0.0.9")});
  ASSERT_EQ(placements.size(), 1u);
  EXPECT_THAT(placements[0].worker_ids, ElementsAre("a", "a"));
}

}  // namespace
}  // namespace dfv::server
