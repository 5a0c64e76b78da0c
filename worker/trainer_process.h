// `dfv-trainer assignment`: the process a worker daemon starts for each
// assignment. It trains one rank of a job and writes its reports
// (proto/trainer.proto) on stdout, one per line (worker/protocol/
// trainer_report.h); its stderr is the log.
#ifndef DFV_WORKER_TRAINER_PROCESS_H_
#define DFV_WORKER_TRAINER_PROCESS_H_

#include <atomic>
#include <cstdio>
#include <string>

#include "absl/status/status.h"

namespace dfv::worker {

struct TrainerProcessOptions {
  std::string job_file;      // the canonical job the coordinator sent
  std::string out_dir;       // run folder
  std::string resume_from;   // checkpoint file; empty: from scratch
  int rank = 0;
  int world_size = 1;
  std::string rendezvous;    // HOST:PORT of rank 0 when world_size > 1
};

// Trains and reports. Every outcome is also written to `out` as the last
// report (finished or error), so the daemon learns why it failed. Returns
// OK, CANCELLED when `cancel` was set, or the error.
absl::Status RunTrainerProcess(const TrainerProcessOptions& options, std::FILE* out,
                               const std::atomic<bool>* cancel);

}  // namespace dfv::worker

#endif  // DFV_WORKER_TRAINER_PROCESS_H_
