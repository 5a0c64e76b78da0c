#include "common/cpu_cores.h"

#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <thread>

#include "absl/strings/str_cat.h"

namespace dfv {

int CpusAvailable() {
  // CPU_ALLOC sets grow until the kernel's mask fits: a fixed cpu_set_t
  // (1024 CPUs) fails with EINVAL on larger machines.
  for (int max_cpus = CPU_SETSIZE; max_cpus <= (1 << 20); max_cpus *= 2) {
    cpu_set_t* set = CPU_ALLOC(static_cast<size_t>(max_cpus));
    if (set == nullptr) break;
    const size_t size = CPU_ALLOC_SIZE(static_cast<size_t>(max_cpus));
    CPU_ZERO_S(size, set);
    const int rc = sched_getaffinity(0, size, set);
    const int error = errno;
    const int count = rc == 0 ? CPU_COUNT_S(size, set) : 0;
    CPU_FREE(set);
    if (rc == 0) return std::max(1, count);
    if (error != EINVAL) break;
  }
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

ThreadPlan PlanTrainThreads(int64_t requested, int cores, int ranks_on_host) {
  ThreadPlan plan;
  plan.cores = std::max(1, cores);
  plan.ranks_on_host = std::max(1, ranks_on_host);
  plan.requested = requested > 0;
  plan.threads = plan.requested ? static_cast<int>(requested) : std::max(1, plan.cores / plan.ranks_on_host);
  return plan;
}

std::string DescribeThreadPlan(const ThreadPlan& plan) {
  auto count = [](int n, const char* noun) { return absl::StrCat(n, " ", noun, n == 1 ? "" : "s"); };
  return absl::StrCat("threads: ", count(plan.cores, "core"), " available to this process, ",
                      count(plan.ranks_on_host, "rank"), " of this job on this host: ",
                      count(plan.threads, "intra-op thread"), " each",
                      plan.requested ? " (train.threads)" : " (train.threads 0: the cores split among the ranks)");
}

}  // namespace dfv
