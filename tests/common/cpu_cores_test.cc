#include "common/cpu_cores.h"

#include <gtest/gtest.h>
#include <sched.h>

#include <thread>

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
  EXPECT_EQ(alone.threads, 8);
  EXPECT_FALSE(alone.requested);
  EXPECT_EQ(PlanTrainThreads(0, 8, 2).threads, 4);
  EXPECT_EQ(PlanTrainThreads(0, 8, 3).threads, 2);
  EXPECT_EQ(PlanTrainThreads(0, 2, 4).threads, 1) << "at least one each";
  EXPECT_EQ(PlanTrainThreads(0, 0, 0).threads, 1);
  EXPECT_EQ(PlanTrainThreads(0, 0, 0).ranks_on_host, 1);
}

TEST(PlanTrainThreads, ARequestedCountWins) {
  ThreadPlan plan = PlanTrainThreads(3, 8, 2);
  EXPECT_EQ(plan.threads, 3);
  EXPECT_TRUE(plan.requested);
  EXPECT_EQ(plan.cores, 8);
  EXPECT_EQ(plan.ranks_on_host, 2);
}

TEST(DescribeThreadPlan, NamesCoresRanksAndThreads) {
  EXPECT_EQ(DescribeThreadPlan(PlanTrainThreads(0, 2, 1)),
            "threads: 2 cores available to this process, 1 rank of this job on this host: 2 intra-op threads "
            "each (train.threads 0: the cores split among the ranks)");
  EXPECT_EQ(DescribeThreadPlan(PlanTrainThreads(1, 4, 2)),
            "threads: 4 cores available to this process, 2 ranks of this job on this host: 1 intra-op thread "
            "each (train.threads)");
}

}  // namespace
}  // namespace dfv
