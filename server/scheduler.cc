#include "server/scheduler.h"

#include <algorithm>

#include "common/rpc/rpc.h"

namespace dfv::server {

std::vector<Placement> ScheduleJobs(std::vector<QueuedJob> jobs, std::vector<FreeWorker> workers) {
  std::stable_sort(jobs.begin(), jobs.end(), [](const QueuedJob& a, const QueuedJob& b) {
    if (a.priority != b.priority) return a.priority > b.priority;
    return a.submit_order < b.submit_order;
  });

  std::vector<Placement> placements;
  for (const QueuedJob& job : jobs) {
    if (job.world_size < 1) continue;
    // Eligible workers, most free slots first: they become rank 0 and absorb
    // the extra ranks when ranks must double up.
    std::vector<FreeWorker*> eligible;
    int total_free = 0;
    for (FreeWorker& worker : workers) {
      if (worker.device == job.device && worker.free_slots > 0) {
        eligible.push_back(&worker);
        total_free += worker.free_slots;
      }
    }
    if (total_free < job.world_size) continue;  // backfill: try the next job
    std::stable_sort(eligible.begin(), eligible.end(), [](const FreeWorker* a, const FreeWorker* b) {
      if (a->free_slots != b->free_slots) return a->free_slots > b->free_slots;
      return a->name < b->name;
    });

    // Round-robin: one rank per worker per pass. A worker's ranks stay
    // adjacent in rank order, which keeps a host's ranks together.
    std::vector<int> taken(eligible.size(), 0);
    int remaining = job.world_size;
    while (remaining > 0) {
      for (size_t i = 0; i < eligible.size() && remaining > 0; ++i) {
        if (taken[i] < eligible[i]->free_slots) {
          ++taken[i];
          --remaining;
        }
      }
    }
    // The gang's workers in rank order; the first one runs rank 0. Rank 0
    // must be reachable from the others: when any of them is not on a
    // loopback host, a loopback worker must not be first.
    std::vector<size_t> order;
    for (size_t i = 0; i < eligible.size(); ++i) {
      if (taken[i] > 0) order.push_back(i);
    }
    auto reachable = [&](size_t i) { return !rpc::IsLoopbackHost(eligible[i]->host); };
    auto first_reachable = std::find_if(order.begin(), order.end(), reachable);
    if (first_reachable != order.end()) std::rotate(order.begin(), first_reachable, first_reachable + 1);

    Placement placement;
    placement.job_id = job.job_id;
    for (size_t i : order) {
      for (int k = 0; k < taken[i]; ++k) placement.worker_ids.push_back(eligible[i]->worker_id);
      eligible[i]->free_slots -= taken[i];
    }
    placements.push_back(std::move(placement));
  }
  return placements;
}

}  // namespace dfv::server
