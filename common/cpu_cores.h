// How many cores this process may use, and how a job's ranks on one host
// share them (train.threads: 0). The one home of that rule: the trainer
// applies it in every path (`dfv-trainer train` and a daemon's assignments).
#ifndef DFV_COMMON_CPU_CORES_H_
#define DFV_COMMON_CPU_CORES_H_

#include <cstdint>
#include <string>

namespace dfv {

// CPUs in the calling thread's affinity mask (sched_getaffinity(2) of 0):
// the process's mask unless this thread narrowed its own, and what `taskset`,
// cgroup cpusets and container CPU pinning leave it. At least 1; when the
// mask cannot be read, std::thread::hardware_concurrency() (or 1).
// Thread-safe.
int CpusAvailable();

// The intra-op thread count of one training process.
struct ThreadPlan {
  int cores = 1;          // CpusAvailable() when planned
  int ranks_on_host = 1;  // the job's ranks sharing this host's cores (>= 1)
  int threads = 1;        // intra-op threads for this rank (>= 1)
  bool requested = false; // true: train.threads asked for `threads`
};

// `requested` > 0 (train.threads set): that many. 0: the cores split evenly
// among the ranks on this host, at least 1 each (more threads than cores in
// all makes lockstep ranks wait on each other's descheduled threads).
// `cores` and `ranks_on_host` below 1 count as 1. Pure; thread-safe.
ThreadPlan PlanTrainThreads(int64_t requested, int cores, int ranks_on_host);

// One line for the run's log, e.g. "threads: 2 cores available to this
// process, 1 rank of this job on this host: 2 intra-op threads each".
std::string DescribeThreadPlan(const ThreadPlan& plan);

}  // namespace dfv

#endif  // DFV_COMMON_CPU_CORES_H_
