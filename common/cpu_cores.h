// How many cores this process may use, and how a job's ranks on one host
// share them (train.threads: 0). The one home of that rule: the trainer
// applies it in every path (`dfv-trainer train` and a daemon's assignments).
#ifndef DFV_COMMON_CPU_CORES_H_
#define DFV_COMMON_CPU_CORES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace dfv {

// CPUs in the calling thread's affinity mask (sched_getaffinity(2) of 0):
// the process's mask unless this thread narrowed its own, and what `taskset`,
// cgroup cpusets and container CPU pinning leave it. At least 1; when the
// mask cannot be read, std::thread::hardware_concurrency() (or 1).
// Thread-safe.
int CpusAvailable();

// The CPU numbers in the calling thread's affinity mask, ascending (what
// CpusAvailable() counts); empty when the mask cannot be read. Thread-safe.
std::vector<int> AffinityCpus();

// A worker daemon's rule for sharing its cores among its slots, so that two
// trainers on one daemon never oversubscribe: slot `slot` (0-based) of
// `slots` gets a contiguous block of `cpus`, the blocks disjoint and covering
// them all, the first cpus.size() % slots blocks one CPU larger. With more
// slots than CPUs, slot i gets the one CPU cpus[i % cpus.size()] (sharing
// cannot be avoided then). Empty when `cpus` is empty or `slot` is not in
// [0, slots). Pure; thread-safe.
std::vector<int> CoreShare(const std::vector<int>& cpus, int slots, int slot);

// Sets the calling thread's affinity mask to `cpus`; a child it spawns
// inherits the mask. INVALID_ARGUMENT for an empty list or a negative CPU,
// INTERNAL (with strerror) when the kernel refuses. Touches only the calling
// thread.
absl::Status SetThreadAffinity(const std::vector<int>& cpus);

// "0-3,6" for {0,1,2,3,6}.
std::string FormatCpuList(const std::vector<int>& cpus);

// The intra-op thread count of one training process.
struct ThreadPlan {
  int cores = 1;          // CpusAvailable() when planned
  int ranks_on_host = 1;  // the job's ranks sharing this host's cores (>= 1)
  int threads = 1;        // intra-op threads for this rank (>= 1)
  bool requested = false; // true: train.threads asked for `threads`
  // Set when the worker daemon pinned this process to its share of the
  // daemon's cores (CoreShare), e.g. "slot 2 of 2, cpus 1": `cores` is then
  // that share, not divided again among the job's ranks. Empty otherwise.
  std::string share;
};

// `requested` > 0 (train.threads set): that many. 0: the cores split evenly
// among the ranks on this host, at least 1 each (more threads than cores in
// all makes lockstep ranks wait on each other's descheduled threads). The
// batch loader's thread gets no core of its own: it only copies a batch's
// bytes between steps, and the step is faster with every core computing (on
// 2 cores, 2 intra-op threads against 1: 15-47% more samples/s on every model
// of the catalogue, README "Threads"). `cores` and `ranks_on_host` below 1
// count as 1. Pure; thread-safe.
ThreadPlan PlanTrainThreads(int64_t requested, int cores, int ranks_on_host);

// One line for the run's log, e.g. "threads: 2 cores available to this
// process, 1 rank of this job on this host: 2 intra-op threads each"; with a
// share, "threads: 1 core available to this process (the worker's share for
// slot 2 of 2, cpus 1): 1 intra-op thread (train.threads 0: ...)".
std::string DescribeThreadPlan(const ThreadPlan& plan);

}  // namespace dfv

#endif  // DFV_COMMON_CPU_CORES_H_
