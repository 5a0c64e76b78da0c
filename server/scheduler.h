// Gang placement of queued jobs on worker slots. Pure logic: no I/O, no
// clock, no locks; the Coordinator feeds it snapshots and applies the result.
//
// Policy:
// - Jobs are considered by priority (higher first), then submit order.
// - Gang placement: a job gets all of its world_size slots in one decision
//   or none; rank 0 is always one of the chosen workers.
// - Ranks are spread over distinct workers first (round-robin over the
//   workers with the most free slots), and a worker with several free slots
//   takes several ranks only when there are not enough workers.
// - Rank 0 hosts the job's rendezvous, so the other ranks must be able to
//   reach it: when the gang includes a worker whose host is not a loopback
//   address (common/rpc IsLoopbackHost), rank 0 goes to such a worker (the
//   first one in the order above, with all of its ranks). A gang that is all
//   loopback (one machine) keeps the order above.
// - A worker is eligible only when its device equals the job's
//   resources.device.
// - Backfill: a job that does not fit yet is skipped, and lower-priority jobs
//   that fit are still placed. This keeps slots busy, but a large job can
//   wait for as long as smaller jobs keep taking the slots it needs; raise
//   its priority to put it first among the jobs that fit.
#ifndef DFV_SERVER_SCHEDULER_H_
#define DFV_SERVER_SCHEDULER_H_

#include <cstdint>
#include <string>
#include <vector>

namespace dfv::server {

struct QueuedJob {
  std::string job_id;
  int64_t priority = 0;
  int64_t submit_order = 0;  // smaller = submitted earlier
  int world_size = 1;
  std::string device;        // "cpu" or "cuda"
};

struct FreeWorker {
  std::string worker_id;
  std::string name;          // tie-breaker, so placements are deterministic
  std::string device;
  int free_slots = 0;
  // The host of the worker's advertised address ("127.0.0.1", "10.0.0.7",
  // "[::1]"), where rank 0's rendezvous would listen.
  std::string host;
};

struct Placement {
  std::string job_id;
  std::vector<std::string> worker_ids;  // by rank; rank 0 first
};

// Placements for the jobs that fit, in the order they were decided.
std::vector<Placement> ScheduleJobs(std::vector<QueuedJob> jobs, std::vector<FreeWorker> workers);

}  // namespace dfv::server

#endif  // DFV_SERVER_SCHEDULER_H_
