#include "common/cpu_cores.h"

#include <gtest/gtest.h>
#include <sched.h>

#include <algorithm>
#include <thread>
#include <vector>

namespace dfv {
namespace {

int AffinityCount() {
  cpu_set_t set;
  CPU_ZERO(&set);
  EXPECT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
  return CPU_COUNT(&set);
}

TEST(CpusAvailable, CountsTheAffinityMask) {
  EXPECT_GE(CpusAvailable(), 1);
  EXPECT_EQ(CpusAvailable(), AffinityCount());
}

TEST(CpusAvailable, FollowsANarrowedMask) {
  // A thread's own mask (sched_setaffinity of 0 is the calling thread), so
  // narrowing it leaves the test process's other threads alone.
  cpu_set_t all;
  CPU_ZERO(&all);
  ASSERT_EQ(sched_getaffinity(0, sizeof(all), &all), 0);
  int first = -1;
  for (int cpu = 0; cpu < CPU_SETSIZE && first < 0; ++cpu) {
    if (CPU_ISSET(cpu, &all)) first = cpu;
  }
  ASSERT_GE(first, 0);
  int narrowed = 0, expected = 0;
  std::thread worker([&] {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    if (sched_setaffinity(0, sizeof(one), &one) != 0) return;
    narrowed = CpusAvailable();
    expected = AffinityCount();
  });
  worker.join();
  EXPECT_EQ(expected, 1);
  EXPECT_EQ(narrowed, 1);
  EXPECT_EQ(CpusAvailable(), AffinityCount()) << "the main thread keeps its mask";
}

TEST(PlanTrainThreads, SplitsTheCoresAmongRanksOnTheHost) {
  ThreadPlan alone = PlanTrainThreads(0, 8, 1);
  EXPECT_EQ(alone.threads, 8) << "every core computes; the batch loader's thread gets none of its own";
  EXPECT_FALSE(alone.requested);
  EXPECT_EQ(PlanTrainThreads(0, 8, 2).threads, 4);
  EXPECT_EQ(PlanTrainThreads(0, 8, 3).threads, 2) << "rounded down: never more threads than cores";
  EXPECT_EQ(PlanTrainThreads(0, 2, 1).threads, 2) << "the 2-core machines: both cores";
  EXPECT_EQ(PlanTrainThreads(0, 2, 2).threads, 1);
  EXPECT_EQ(PlanTrainThreads(0, 2, 4).threads, 1) << "at least one each";
  EXPECT_EQ(PlanTrainThreads(0, 1, 1).threads, 1);
  EXPECT_EQ(PlanTrainThreads(0, 0, 0).threads, 1);
  EXPECT_EQ(PlanTrainThreads(0, 0, 0).ranks_on_host, 1);
}

TEST(PlanTrainThreads, ARequestedCountWins) {
  ThreadPlan plan = PlanTrainThreads(3, 8, 2);
  EXPECT_EQ(plan.threads, 3);
  EXPECT_TRUE(plan.requested);
  EXPECT_EQ(plan.cores, 8);
  EXPECT_EQ(plan.ranks_on_host, 2);
  EXPECT_EQ(PlanTrainThreads(2, 2, 1).threads, 2) << "all the cores when asked";
}

TEST(DescribeThreadPlan, NamesCoresRanksAndThreads) {
  EXPECT_EQ(DescribeThreadPlan(PlanTrainThreads(0, 2, 1)),
            "threads: 2 cores available to this process, 1 rank of this job on this host: 2 intra-op threads "
            "each (train.threads 0: the cores split among the ranks)");
  EXPECT_EQ(DescribeThreadPlan(PlanTrainThreads(0, 2, 2)),
            "threads: 2 cores available to this process, 2 ranks of this job on this host: 1 intra-op thread "
            "each (train.threads 0: the cores split among the ranks)");
  EXPECT_EQ(DescribeThreadPlan(PlanTrainThreads(1, 4, 2)),
            "threads: 4 cores available to this process, 2 ranks of this job on this host: 1 intra-op thread "
            "each (train.threads)");
}

TEST(AffinityCpus, ListsTheMask) {
  const std::vector<int> cpus = AffinityCpus();
  EXPECT_EQ(static_cast<int>(cpus.size()), AffinityCount());
  EXPECT_TRUE(std::is_sorted(cpus.begin(), cpus.end()));
}

TEST(CoreShare, SplitsTheCpusIntoDisjointBlocksCoveringThemAll) {
  const std::vector<int> cpus = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  for (int slots = 1; slots <= 10; ++slots) {
    std::vector<int> covered;
    for (int slot = 0; slot < slots; ++slot) {
      const std::vector<int> share = CoreShare(cpus, slots, slot);
      ASSERT_FALSE(share.empty()) << slots << " slots, slot " << slot;
      // Balanced: sizes differ by at most one, the larger blocks first.
      EXPECT_EQ(static_cast<int>(share.size()), 10 / slots + (slot < 10 % slots ? 1 : 0));
      covered.insert(covered.end(), share.begin(), share.end());
    }
    EXPECT_EQ(covered, cpus) << slots << " slots: disjoint, in order, all of them";
  }
  EXPECT_EQ(CoreShare({0, 1}, 1, 0), (std::vector<int>{0, 1})) << "one slot: the whole mask";
  EXPECT_EQ(CoreShare({0, 1}, 2, 0), (std::vector<int>{0}));
  EXPECT_EQ(CoreShare({0, 1}, 2, 1), (std::vector<int>{1}));
  EXPECT_EQ(CoreShare({2, 5, 7}, 2, 0), (std::vector<int>{2, 5})) << "the mask's own CPU numbers";
  EXPECT_EQ(CoreShare({2, 5, 7}, 2, 1), (std::vector<int>{7}));
}

TEST(CoreShare, MoreSlotsThanCpusShareOneCpuEachRoundRobin) {
  EXPECT_EQ(CoreShare({4, 6}, 4, 0), (std::vector<int>{4}));
  EXPECT_EQ(CoreShare({4, 6}, 4, 1), (std::vector<int>{6}));
  EXPECT_EQ(CoreShare({4, 6}, 4, 2), (std::vector<int>{4}));
  EXPECT_EQ(CoreShare({4, 6}, 4, 3), (std::vector<int>{6}));
}

TEST(CoreShare, NothingForABadSlotOrNoCpus) {
  EXPECT_TRUE(CoreShare({}, 2, 0).empty());
  EXPECT_TRUE(CoreShare({0, 1}, 2, 2).empty());
  EXPECT_TRUE(CoreShare({0, 1}, 2, -1).empty());
  EXPECT_TRUE(CoreShare({0, 1}, 0, 0).empty());
}

TEST(FormatCpuList, JoinsRuns) {
  EXPECT_EQ(FormatCpuList({0, 1, 2, 3, 6}), "0-3,6");
  EXPECT_EQ(FormatCpuList({1}), "1");
  EXPECT_EQ(FormatCpuList({0, 2, 3}), "0,2-3");
  EXPECT_EQ(FormatCpuList({}), "");
}

TEST(SetThreadAffinity, NarrowsOnlyTheCallingThread) {
  const std::vector<int> all = AffinityCpus();
  ASSERT_FALSE(all.empty());
  std::vector<int> seen;
  absl::Status status;
  std::thread worker([&] {
    status = SetThreadAffinity({all.back()});
    seen = AffinityCpus();
  });
  worker.join();
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(seen, std::vector<int>{all.back()});
  EXPECT_EQ(AffinityCpus(), all) << "the main thread keeps its mask";
  EXPECT_TRUE(absl::IsInvalidArgument(SetThreadAffinity({})));
  EXPECT_TRUE(absl::IsInvalidArgument(SetThreadAffinity({-1})));
}

TEST(DescribeThreadPlan, NamesTheWorkersShare) {
  ThreadPlan plan = PlanTrainThreads(0, 1, 1);
  plan.share = "slot 2 of 2, cpus 1";
  EXPECT_EQ(DescribeThreadPlan(plan),
            "threads: 1 core available to this process (the worker's share for slot 2 of 2, cpus 1): 1 intra-op "
            "thread (train.threads 0: all of the share)");
}

}  // namespace
}  // namespace dfv
