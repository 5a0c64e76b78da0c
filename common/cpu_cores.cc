#include "common/cpu_cores.h"

#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"

namespace dfv {

int CpusAvailable() {
  const std::vector<int> cpus = AffinityCpus();
  if (!cpus.empty()) return static_cast<int>(cpus.size());
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

std::vector<int> AffinityCpus() {
  // CPU_ALLOC sets grow until the kernel's mask fits: a fixed cpu_set_t
  // (1024 CPUs) fails with EINVAL on larger machines.
  for (int max_cpus = CPU_SETSIZE; max_cpus <= (1 << 20); max_cpus *= 2) {
    cpu_set_t* set = CPU_ALLOC(static_cast<size_t>(max_cpus));
    if (set == nullptr) break;
    const size_t size = CPU_ALLOC_SIZE(static_cast<size_t>(max_cpus));
    CPU_ZERO_S(size, set);
    const int rc = sched_getaffinity(0, size, set);
    const int error = errno;
    std::vector<int> cpus;
    if (rc == 0) {
      for (int cpu = 0; cpu < max_cpus; ++cpu) {
        if (CPU_ISSET_S(cpu, size, set)) cpus.push_back(cpu);
      }
    }
    CPU_FREE(set);
    if (rc == 0) return cpus;
    if (error != EINVAL) break;
  }
  return {};
}

std::vector<int> CoreShare(const std::vector<int>& cpus, int slots, int slot) {
  if (cpus.empty() || slots < 1 || slot < 0 || slot >= slots) return {};
  const int n = static_cast<int>(cpus.size());
  if (slots >= n) return {cpus[static_cast<size_t>(slot % n)]};
  const int base = n / slots, larger = n % slots;
  const int begin = slot * base + std::min(slot, larger);
  const int count = base + (slot < larger ? 1 : 0);
  return std::vector<int>(cpus.begin() + begin, cpus.begin() + begin + count);
}

absl::Status SetThreadAffinity(const std::vector<int>& cpus) {
  if (cpus.empty()) return absl::InvalidArgumentError("no CPUs to pin to");
  const int max_cpu = *std::max_element(cpus.begin(), cpus.end());
  if (*std::min_element(cpus.begin(), cpus.end()) < 0) return absl::InvalidArgumentError("a negative CPU number");
  const size_t count = static_cast<size_t>(std::max(max_cpu + 1, static_cast<int>(CPU_SETSIZE)));
  cpu_set_t* set = CPU_ALLOC(count);
  if (set == nullptr) return absl::InternalError("CPU_ALLOC failed");
  const size_t size = CPU_ALLOC_SIZE(count);
  CPU_ZERO_S(size, set);
  for (int cpu : cpus) CPU_SET_S(static_cast<size_t>(cpu), size, set);
  const int rc = sched_setaffinity(0, size, set);
  const int error = errno;
  CPU_FREE(set);
  if (rc != 0) {
    return absl::InternalError(absl::StrCat("sched_setaffinity(", FormatCpuList(cpus), "): ", std::strerror(error)));
  }
  return absl::OkStatus();
}

std::string FormatCpuList(const std::vector<int>& cpus) {
  std::string out;
  for (size_t i = 0; i < cpus.size();) {
    size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    if (!out.empty()) out += ",";
    out += j == i ? absl::StrCat(cpus[i]) : absl::StrCat(cpus[i], "-", cpus[j]);
    i = j + 1;
  }
  return out;
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
  if (!plan.share.empty()) {
    // The daemon already gave each rank (each slot) its own cores.
    return absl::StrCat("threads: ", count(plan.cores, "core"), " available to this process (the worker's share for ",
                        plan.share, "): ", count(plan.threads, "intra-op thread"),
                        plan.requested ? " (train.threads)" : " (train.threads 0: all of the share)");
  }
  return absl::StrCat("threads: ", count(plan.cores, "core"), " available to this process, ",
                      count(plan.ranks_on_host, "rank"), " of this job on this host: ",
                      count(plan.threads, "intra-op thread"), " each",
                      plan.requested ? " (train.threads)" : " (train.threads 0: the cores split among the ranks)");
}

}  // namespace dfv
