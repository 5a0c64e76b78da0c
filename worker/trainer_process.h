// `dfv-trainer assignment`: the process a worker daemon starts for each
// assignment. It trains one rank of a job and writes its reports
// (proto/trainer.proto) on stdout, one per line (worker/protocol/
// trainer_report.h); its stderr is the log.
#ifndef DFV_WORKER_TRAINER_PROCESS_H_
#define DFV_WORKER_TRAINER_PROCESS_H_

#include <atomic>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace dfv::worker {

struct TrainerProcessOptions {
  std::string job_file;      // the canonical job the coordinator sent
  std::string out_dir;       // run folder
  std::string resume_from;   // checkpoint file; empty: from scratch
  int rank = 0;
  int world_size = 1;
  std::string rendezvous;    // HOST:PORT of rank 0 when world_size > 1
  // The attempt's rendezvous secret (Assignment.rendezvous_secret); required
  // when world_size > 1. Only the ranks that hold it meet (dist/rendezvous.h).
  std::string rendezvous_secret;
  // This host's data-plane address: Gloo binds to it and rank 0 publishes
  // its rendezvous with it. Empty: the rendezvous host (as before).
  std::string data_plane_address;
  // The folders the job's data set must lie under (common/data_roots.h),
  // checked before anything is read; empty: no restriction.
  std::vector<std::string> data_roots;
  // The daemon pinned this process to its slot's share of the cores
  // (train::TrainerOptions::core_share), e.g. "slot 2 of 2"; empty: not.
  std::string core_share;
};

// Trains and reports. A data set outside `data_roots` fails at once with
// PERMISSION_DENIED (not retried: it would fail the same way), before the
// rendezvous and before anything is opened. Every outcome is also written to `out` as the last
// report (finished or error), so the daemon learns why it failed. Returns
// OK, CANCELLED when `cancel` was set, or the error.
absl::Status RunTrainerProcess(const TrainerProcessOptions& options, std::FILE* out,
                               const std::atomic<bool>* cancel);

}  // namespace dfv::worker

#endif  // DFV_WORKER_TRAINER_PROCESS_H_
